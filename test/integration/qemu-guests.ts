/**
 * Guests for the qemu driver's tests, made in a few bytes so that no test
 * downloads a kernel.
 *
 * `dirtyingDisk`: a raw disk whose boot sector dirties memory forever. It
 * enters unreal mode (a 4 GiB data segment in real mode) and writes one
 * dword into every 4 KiB page of [2 MiB, END), spinning DELAY iterations
 * between pages, round after round. With DELAY 0 it dirties every page
 * faster than any link sends them (a migration that cannot converge); with
 * a delay its dirty rate is bounded by its CPU, so throttling helps.
 *
 * Assembled with GNU as (`as --32`, `ld -m elf_i386 -Ttext 0x7c00 --oformat binary`):
 *
 *     cli; xor %ax,%ax; mov %ax,%ds; mov %ax,%ss; mov $0x7c00,%sp
 *     in $0x92,%al; or $2,%al; out %al,$0x92        # fast A20
 *     lgdtl gdtr                                     # one flat 4 GiB data segment
 *     mov %cr0,%eax; or $1,%al; mov %eax,%cr0; jmp 1f
 *  1: mov $8,%bx; mov %bx,%ds                        # load it in protected mode...
 *     and $0xfe,%al; mov %eax,%cr0; jmp 2f           # ...and go back: unreal mode
 *  2: xor %ax,%ax; mov %ax,%ds; xor %ecx,%ecx
 *  outer: mov $START,%edi                            # offset 0x35
 *  inner: addr32 movl %ecx,(%edi)
 *     mov $DELAY,%edx                                # offset 0x3f
 *  3: test %edx,%edx; jz 4f; dec %edx; jmp 3b
 *  4: add $4096,%edi; cmp $END,%edi; jb inner        # END at offset 0x56
 *     inc %ecx; jmp outer
 *  gdt: .quad 0; .quad 0x00cf92000000ffff
 *  gdtr: .word 15; .long gdt
 */
import { writeFileSync } from 'node:fs'

const BOOT_SECTOR = 'fa31c08ed88ed0bc007ce4920c02e692660f0116707c0f20c00c010f22c0eb00bb08008edb24fe0f22c0eb0031c08ed8' +
  '6631c966bf000020006766890f66ba000000006685d27404664aebf76681c7001000006681ff0000000472dd6641ebd3' +
  '0000000000000000ffff00000092cf000f00607c'

/** Writes a 1 MiB raw disk that dirties [2 MiB, endMiB) of the guest's memory (keep endMiB below its RAM). */
export function dirtyingDisk (file: string, endMiB: number, delay = 0): void {
  if (endMiB <= 2) throw new Error(`Expected endMiB > 2, got ${endMiB}`)
  const disk = Buffer.alloc(1024 * 1024)
  Buffer.from(BOOT_SECTOR, 'hex').copy(disk)
  disk.writeUInt32LE(delay, 0x3f)
  disk.writeUInt32LE(endMiB * 1024 * 1024, 0x56)
  disk[510] = 0x55
  disk[511] = 0xaa
  writeFileSync(file, disk)
}

/** A raw disk of zeros: the BIOS finds nothing to boot and the guest stays idle. */
export function blankDisk (file: string, sizeMiB = 16): void {
  writeFileSync(file, Buffer.alloc(sizeMiB * 1024 * 1024))
}
