/** Types of bin/own-node.js (plain JavaScript: it runs before the TypeScript sources can be loaded). */
export declare const MIN_NODE_MAJOR: number
export declare function ownNode (root: string, version?: string, execPath?: string): string | Error | undefined
export declare function runOn (node: string, script: string): Promise<void>
