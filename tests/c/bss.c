/* .bss, static locals, large zero arrays, aligned data, mergeable constants. */
#include <stdio.h>
#include <stdint.h>

static long zeros[4096];
int global_zero;
static double scale = 2.5;
_Alignas(64) static char aligned_buf[64];
_Alignas(4096) static int page_aligned[16];

static int next_id(void) {
  static int id;        /* static local in .bss */
  static int step = 3;  /* static local in .data */
  id += step;
  return id;
}

double mix(double x) { return x * 1.25 + 0.0625 - scale; }  /* .rodata.cst8 */

int main(void) {
  long sum = 0;
  for (int i = 0; i < 4096; i++) sum += zeros[i];
  zeros[100] = 5;
  global_zero += 9;
  for (int i = 0; i < 5; i++) printf("id %d\n", next_id());
  printf("sum %ld, zeros[100] %ld, global %d\n", sum, zeros[100], global_zero);
  printf("aligned %d %d\n", (int)((uintptr_t)aligned_buf % 64), (int)((uintptr_t)page_aligned % 4096));
  printf("mix %.4f\n", mix(3.0));
  return next_id();
}
