/* Constructors and destructors (.init_array, .fini_array, priorities), atexit. */
#include <stdio.h>
#include <stdlib.h>

static int state;

__attribute__((constructor(200))) static void second(void) { state = state * 10 + 2; }
__attribute__((constructor(101))) static void first(void) { state = state * 10 + 1; }
__attribute__((constructor)) static void last(void) { state = state * 10 + 3; }
__attribute__((destructor)) static void goodbye(void) { printf("destructor sees state %d\n", state); }
__attribute__((destructor(150))) static void goodbye_late(void) { printf("prioritised destructor\n"); }

static void at_exit_handler(void) { printf("atexit handler\n"); }

int main(void) {
  printf("constructors ran in order: %d\n", state);
  atexit(at_exit_handler);
  state = 99;
  return 0;
}
