export async function main (_args: string[]): Promise<number> {
  throw new Error('not written yet')
}
