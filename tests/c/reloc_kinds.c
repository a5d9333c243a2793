/* Relocation kinds that C at the small code model never emits, written in assembly:
   GOTPCREL/REX_GOTPCRELX, GOTPC32, GOTPC64, GOTOFF64, GOT64, PLTOFF64, PC64, GOTPCREL64. */
#include <stdio.h>

long ext_value = 1234;
__attribute__((used)) static long local_value = 77;
long get_answer(void) { return 42; }
long local_value_address_check(void) { return local_value; }

long via_gotpcrel(void);
long via_gotpc32_gotoff64(void);
long via_gotpc64_got64(void);
long via_pltoff64(void);
long via_pc64(void);
long via_gotpcrel64(void);

__asm__(
  "  .text\n"
  "  .globl via_gotpcrel\n"
  "via_gotpcrel:\n"
  "  movq ext_value@GOTPCREL(%rip), %rax\n"
  "  movq (%rax), %rax\n"
  "  ret\n"
  "  .globl via_gotpc32_gotoff64\n"
  "via_gotpc32_gotoff64:\n"
  "  leaq _GLOBAL_OFFSET_TABLE_(%rip), %rcx\n"
  "  movabsq $local_value@GOTOFF, %rax\n"
  "  movq (%rcx,%rax), %rax\n"
  "  ret\n"
  "  .globl via_gotpc64_got64\n"
  "via_gotpc64_got64:\n"
  "1:  leaq 1b(%rip), %r11\n"
  "  movabsq $_GLOBAL_OFFSET_TABLE_-1b, %r10\n"
  "  addq %r10, %r11\n"
  "  movabsq $ext_value@GOT, %rax\n"
  "  movq (%r11,%rax), %rax\n"
  "  movq (%rax), %rax\n"
  "  ret\n"
  "  .globl via_pltoff64\n"
  "via_pltoff64:\n"
  "1:  leaq 1b(%rip), %r11\n"
  "  movabsq $_GLOBAL_OFFSET_TABLE_-1b, %r10\n"
  "  addq %r10, %r11\n"
  "  movabsq $get_answer@PLTOFF, %rax\n"
  "  addq %r11, %rax\n"
  "  jmp *%rax\n"
  "  .globl via_pc64\n"
  "via_pc64:\n"
  "  leaq pc64_slot(%rip), %rax\n"
  "  addq (%rax), %rax\n"
  "  movq (%rax), %rax\n"
  "  ret\n"
  "  .globl via_gotpcrel64\n"
  "via_gotpcrel64:\n"
  "  leaq gotpcrel64_slot(%rip), %rax\n"
  "  addq (%rax), %rax\n"
  "  movq (%rax), %rax\n"
  "  movq (%rax), %rax\n"
  "  ret\n"
  "  .section .rodata.kinds,\"a\"\n"
  "  .balign 8\n"
  "pc64_slot:\n"
  "  .quad ext_value - .\n"
  "gotpcrel64_slot:\n"
  "  .quad ext_value@GOTPCREL\n"
  "  .text\n");

int main(void) {
  printf("GOTPCREL %ld\n", via_gotpcrel());
  printf("GOTPC32+GOTOFF64 %ld\n", via_gotpc32_gotoff64());
  printf("GOTPC64+GOT64 %ld\n", via_gotpc64_got64());
  printf("PLTOFF64 %ld\n", via_pltoff64());
  printf("PC64 %ld\n", via_pc64());
  printf("GOTPCREL64 %ld\n", via_gotpcrel64());
  return (int)(local_value_address_check() % 50);
}
