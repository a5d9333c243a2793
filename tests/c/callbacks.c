/* Callbacks from libc into loaded code: qsort, bsearch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct item { const char *name; int weight; };

static int by_weight(const void *a, const void *b) {
  const struct item *x = a, *y = b;
  return (x->weight > y->weight) - (x->weight < y->weight);
}
static int by_name(const void *a, const void *b) {
  return strcmp(((const struct item *)a)->name, ((const struct item *)b)->name);
}
static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

int main(void) {
  struct item items[] = { {"pear", 5}, {"apple", 9}, {"fig", 1}, {"kiwi", 7}, {"plum", 3} };
  size_t n = sizeof items / sizeof items[0];
  qsort(items, n, sizeof items[0], by_weight);
  for (size_t i = 0; i < n; i++) printf("%s:%d ", items[i].name, items[i].weight);
  printf("\n");
  qsort(items, n, sizeof items[0], by_name);
  for (size_t i = 0; i < n; i++) printf("%s ", items[i].name);
  printf("\n");
  int v[64];
  for (int i = 0; i < 64; i++) v[i] = (i * 37) % 64;
  qsort(v, 64, sizeof v[0], cmp_int);
  int key = 41;
  int *found = bsearch(&key, v, 64, sizeof v[0], cmp_int);
  printf("found %d at %d\n", found ? *found : -1, found ? (int)(found - v) : -1);
  return found ? 0 : 1;
}
