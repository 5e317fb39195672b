/**
 * A small Linux guest for the migration benchmarks, built from Debian's own
 * packages in seconds and cached: the kernel of `linux-image-cloud-amd64`
 * (extracted with `dpkg-deb -x`) and an initramfs of `busybox-static` (made
 * with `busybox cpio -o -H newc`). Its init reads `dirty=N` from the kernel's
 * command line: with N > 0 it writes N MiB of non-zero bytes into a tmpfs,
 * over and over (QEMU sends zero pages almost for free, so zeros would not
 * count), and says so on its console once the first pass is done; with 0 it
 * sleeps. Two kernel images (directories the qemu driver boots directly):
 * `bb-idle` and `bb-dirty`.
 */
import { execFileSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** What the guest prints on its console once it runs its workload (the benchmark waits for it). */
export const READY_MARK = 'discovery-guest: ready'

const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
dirty=0
for a in $(cat /proc/cmdline); do case $a in dirty=*) dirty=\${a#dirty=};; esac; done
if [ "$dirty" -gt 0 ]; then
  mkdir -p /hot
  mount -t tmpfs -o size=$((dirty + 8))m tmpfs /hot
  pass () { yes discovery-dirty-page | dd of=/hot/data bs=64k count=$((dirty * 16)) iflag=fullblock conv=notrunc 2>/dev/null; }
  pass
  echo "${READY_MARK} dirtying $dirty MiB" > /dev/ttyS0
  while true; do pass; done
fi
echo "${READY_MARK} idle" > /dev/ttyS0
while true; do sleep 3600; done
`

export interface Guest {
  /** The images dir to give the agents (`--images-dir`) and the bare QEMU runs. */
  imagesDir: string
  kernel: string
  initrd: string
  /** The kernel package it came from, for the report. */
  kernelPackage: string
}

/** Builds the guest into `cacheDir` unless it is there already; `dirtyMiB` is what `bb-dirty` dirties. */
export function buildGuest (cacheDir: string, dirtyMiB: number): Guest {
  const imagesDir = join(cacheDir, 'images')
  const kernel = join(cacheDir, 'vmlinuz')
  const initrd = join(cacheDir, 'initrd')
  const pkgFile = join(cacheDir, 'kernel-package')
  if (!existsSync(kernel) || !existsSync(initrd) || !existsSync(pkgFile)) {
    mkdirSync(cacheDir, { recursive: true })
    const work = mkdtempSync(join(tmpdir(), 'discovery-guest-'))
    // apt downloads as the _apt user when it can: let it write here.
    chmodSync(work, 0o777)
    try {
      const meta = execFileSync('apt-cache', ['depends', 'linux-image-cloud-amd64'], { encoding: 'utf8' })
      const pkg = /Depends: (linux-image-[\w.+-]+-cloud-amd64)\b/.exec(meta)?.[1]
      if (pkg == null) throw new Error('apt-cache does not know linux-image-cloud-amd64 (a Debian machine with its package lists is needed: apt-get update)')
      execFileSync('apt-get', ['download', pkg, 'busybox-static'], { cwd: work, stdio: ['ignore', 'ignore', 'pipe'] })
      const debs = readdirSync(work)
      const x = (prefix: string, into: string): void => {
        const deb = debs.find(f => f.startsWith(prefix) && f.endsWith('.deb'))
        if (deb == null) throw new Error(`apt-get download gave no ${prefix}*.deb`)
        execFileSync('dpkg-deb', ['-x', join(work, deb), into])
      }
      x(pkg, join(work, 'kernel'))
      x('busybox-static', join(work, 'busybox'))
      const vmlinuz = readdirSync(join(work, 'kernel', 'boot')).find(f => f.startsWith('vmlinuz-'))
      if (vmlinuz == null) throw new Error(`${pkg} has no /boot/vmlinuz-*`)
      copyFileSync(join(work, 'kernel', 'boot', vmlinuz), kernel)
      const root = join(work, 'root')
      for (const d of ['bin', 'proc', 'sys', 'dev', 'tmp']) mkdirSync(join(root, d), { recursive: true })
      const busybox = join(work, 'busybox', 'bin', 'busybox')
      copyFileSync(busybox, join(root, 'bin', 'busybox'))
      chmodSync(join(root, 'bin', 'busybox'), 0o755)
      symlinkSync('busybox', join(root, 'bin', 'sh'))
      writeFileSync(join(root, 'init'), INIT, { mode: 0o755 })
      execFileSync('sh', ['-c', `cd "${root}" && find . | "${busybox}" cpio -o -H newc 2>/dev/null | gzip -6 > "${initrd}"`])
      writeFileSync(pkgFile, pkg + '\n')
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  }
  const kernelPackage = execFileSync('cat', [pkgFile], { encoding: 'utf8' }).trim()
  for (const [name, dirty] of [['bb-idle', 0], ['bb-dirty', dirtyMiB]] as const) {
    const dir = join(imagesDir, name)
    mkdirSync(dir, { recursive: true })
    for (const [from, to] of [[kernel, 'vmlinuz'], [initrd, 'initrd']]) if (!existsSync(join(dir, to))) symlinkSync(from, join(dir, to))
    writeFileSync(join(dir, 'cmdline'), `console=ttyS0 quiet panic=-1 dirty=${dirty}\n`)
  }
  return { imagesDir, kernel, initrd, kernelPackage }
}
