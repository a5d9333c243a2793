/* A program split over several objects: calls, data and a function pointer across them. */
#include <stdio.h>
#include "multi.h"

int main(int argc, char **argv) {
  (void)argv;
  shared_counter += argc;
  for (int i = 0; i < 5; i++) accumulate(i * i);
  printf("total %ld, counter %d, name %s\n", total(), shared_counter, library_name);
  printf("apply twice: %d\n", apply(twice, 21));
  printf("fib(20) = %ld\n", fib(20));
  return (int)(total() % 100);
}
