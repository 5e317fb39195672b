/**
 * What a VM's `image` names in the images dir: a disk image (a file: the VM
 * gets a qcow2 overlay on it, and the base is never written), or a kernel
 * image (a directory holding `vmlinuz`, `initrd` and optionally `cmdline`:
 * booted directly, with no disk and no bootloader — small guests such as a
 * busybox initramfs, made from distribution packages in seconds).
 */
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { ensureOverlay, type KernelImage, QemuDiskError, type VmPaths } from './qemu-process.ts'

const IMAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
/** The kernel's command line when the image does not say: its console on the serial port (the VM's console.log). */
const DEFAULT_CMDLINE = 'console=ttyS0 quiet'

export interface VmImage {
  disk?: string
  kernel?: KernelImage
}

export async function resolveImage (imagesDir: string, image: string, paths: VmPaths, qemuImg: string): Promise<VmImage> {
  if (!IMAGE_NAME.test(image)) throw new QemuDiskError(`Expected \`image\` to be the name of a base image in ${imagesDir} (letters, digits, . _ -), got \`${image}\``)
  const base = join(imagesDir, image)
  const s = await stat(base).catch(() => undefined)
  if (s?.isDirectory() === true) return { kernel: await kernelImage(base) }
  await ensureOverlay(qemuImg, base, paths.disk)
  return { disk: paths.disk }
}

async function kernelImage (dir: string): Promise<KernelImage> {
  const kernel = join(dir, 'vmlinuz')
  const initrd = join(dir, 'initrd')
  for (const f of [kernel, initrd]) {
    if (!(await stat(f).then(s => s.isFile(), () => false))) throw new QemuDiskError(`the kernel image ${dir} has no ${f}: a kernel image is a directory with vmlinuz, initrd and optionally cmdline`)
  }
  const cmdline = (await readFile(join(dir, 'cmdline'), 'utf8').catch(() => DEFAULT_CMDLINE)).trim()
  if (cmdline.length > 2048 || cmdline.includes('\n')) throw new QemuDiskError(`${join(dir, 'cmdline')} must be one line of at most 2048 characters`)
  return { kernel, initrd, append: cmdline }
}
