/* setjmp/longjmp through loaded frames. */
#include <setjmp.h>
#include <stdio.h>

static jmp_buf env;
static int depth;

__attribute__((noinline)) static void dive(int n) {
  depth++;
  if (n == 0) longjmp(env, 42);
  dive(n - 1);
  printf("never printed\n");
}

int main(void) {
  volatile int rounds = 0;
  int r = setjmp(env);
  printf("setjmp returned %d after %d frames\n", r, depth);
  if (rounds++ < 3) dive(5 + rounds);
  return r == 42 ? 3 : 1;
}
