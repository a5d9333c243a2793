/* The stdout and stderr objects of libc, used directly (a data reference to the host:
   without PIC this is an R_X86_64_PC32 to libc's data, which the loader must refuse). */
#include <stdio.h>

int main(void) {
  fputs("to stdout via fputs\n", stdout);
  fprintf(stdout, "%s %d\n", "fprintf to stdout", 7);
  fflush(stdout);
  fputs("to stderr\n", stderr);
  putchar('x');
  putchar('\n');
  setvbuf(stdout, NULL, _IOFBF, 0);
  printf("buffered line\n");
  return 5;
}
