/* .text.startup (main at -O2), .text.unlikely/.text.hot, named sections, weak symbols,
   a large const table (.rodata), local and global data in custom sections. */
#include <stdio.h>

__attribute__((cold, noinline)) static int rare(int x) { return x * 3 + 1; }
__attribute__((hot, noinline)) static int common_path(int x) { return x / 2; }
__attribute__((section(".text.custom"), noinline)) int in_custom(int x) { return x ^ 0x55; }
__attribute__((section(".data.custom"))) int custom_data = 1234;
__attribute__((section(".rodata.custom"))) const int custom_const = 4321;
__attribute__((weak)) int weak_value = 11;
__attribute__((weak)) int weak_function(void) { return 17; }
extern int missing_weak(void) __attribute__((weak));

static const unsigned short squares[256] = {
#define S(i) (i) * (i)
#define S4(i) S(i), S(i + 1), S(i + 2), S(i + 3)
#define S16(i) S4(i), S4(i + 4), S4(i + 8), S4(i + 12)
  S16(0), S16(16), S16(32), S16(48), S16(64), S16(80), S16(96), S16(112),
  S16(128), S16(144), S16(160), S16(176), S16(192), S16(208), S16(224), S16(240)
};

int main(int argc, char **argv) {
  (void)argv;
  int n = 27;
  int steps = 0;
  while (n != 1) { n = (n % 2) ? rare(n) : common_path(n); steps++; }
  printf("collatz steps %d\n", steps);
  printf("custom %d %d %d\n", in_custom(0x0f), custom_data, custom_const);
  printf("weak %d %d missing %s\n", weak_value, weak_function(), missing_weak ? "present" : "absent");
  unsigned long sum = 0;
  for (int i = 0; i < 256; i++) sum += squares[i];
  printf("squares %lu\n", sum);
  return steps + argc;
}
