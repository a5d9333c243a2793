/* Function-pointer tables in data (.data.rel, .data.rel.ro), string literals
   (.rodata.str mergeable), a switch jump table (.rodata), pointers to data in data. */
#include <stdio.h>
#include <string.h>

static int add(int a, int b) { return a + b; }
static int sub(int a, int b) { return a - b; }
static int mul(int a, int b) { return a * b; }
int divide(int a, int b) { return b ? a / b : 0; }

typedef int (*op_fn)(int, int);
struct op { const char *name; op_fn fn; };

/* Writable table of pointers: .data.rel (PIC) or .data (non-PIC). */
struct op ops[] = { {"add", add}, {"sub", sub}, {"mul", mul}, {"div", divide} };
/* Read-only table of pointers: .data.rel.ro (PIC) or .rodata (non-PIC). */
static const op_fn const_ops[] = { mul, add, divide, sub };
static const char *const words[] = { "alpha", "beta", "gamma", "delta", "epsilon" };
static int numbers[] = { 10, 20, 30 };
int *number_ptr = &numbers[1];
const char *greeting = "hello from a pointer in data";

__attribute__((noinline)) static const char *classify(int x) {
  switch (x) {
  case 0: return "zero";
  case 1: return "one";
  case 2: return "two";
  case 3: return "three";
  case 4: return "four";
  case 5: return "five";
  case 6: return "six";
  case 7: return "seven";
  default: return "many";
  }
}

__attribute__((noinline)) static int score(int x) {
  switch (x) {
  case 10: return 3;
  case 11: return 5;
  case 12: return 7;
  case 13: return 11;
  case 14: return 13;
  case 15: return 17;
  case 16: return 19;
  default: return -1;
  }
}

int main(void) {
  int total = 0;
  for (unsigned i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    int r = ops[i].fn(12, 4);
    printf("%s(12, 4) = %d\n", ops[i].name, r);
    total += r;
  }
  for (unsigned i = 0; i < 4; i++)
    total += const_ops[i](7, 3);
  for (int i = 0; i < 10; i++)
    printf("%d is %s, score %d\n", i, classify(i), score(i + 8));
  for (unsigned i = 0; i < 5; i++)
    printf("%s has %zu letters\n", words[i], strlen(words[i]));
  printf("%s; *number_ptr = %d; total = %d\n", greeting, *number_ptr, total);
  return total & 0x7f;
}
