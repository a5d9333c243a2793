#include <stdlib.h>
#include "demo.h"

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

void sort_longs(long *xs, size_t n) { qsort(xs, n, sizeof *xs, cmp_long); }

long median(long *xs, size_t n) {
    sort_longs(xs, n);
    return n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}
