/* Varargs functions defined in loaded code, and vsnprintf from libc. */
#include <stdarg.h>
#include <stdio.h>

static long sum(int count, ...) {
  va_list ap;
  va_start(ap, count);
  long total = 0;
  for (int i = 0; i < count; i++) total += va_arg(ap, long);
  va_end(ap);
  return total;
}

static double average(int count, ...) {
  va_list ap;
  va_start(ap, count);
  double total = 0;
  for (int i = 0; i < count; i++) total += va_arg(ap, double);
  va_end(ap);
  return count ? total / count : 0;
}

__attribute__((format(printf, 2, 3))) static int format(char *buf, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, 128, fmt, ap);
  va_end(ap);
  return n;
}

int main(int argc, char **argv) {
  char buf[128];
  int n = format(buf, "%s|%d|%5.2f|%c|%lx", "text", 42, 3.14159, 'z', 0xbeefL);
  printf("%d: %s\n", n, buf);
  printf("sum %ld\n", sum(6, 1L, 2L, 3L, 4L, 5L, (long)argc));
  printf("average %.3f\n", average(4, 1.0, 2.5, 4.0, 8.5));
  for (int i = 1; i < argc; i++) printf("arg %d: %s\n", i, argv[i]);
  return argc;
}
