#include "multi.h"

static long acc;
int shared_counter = 100;
const char library_name[] = "multi_lib";

void accumulate(long v) { acc += v; shared_counter++; }
long total(void) { return acc; }
int twice(int x) { return 2 * x; }
int apply(int (*f)(int), int x) { return f(x); }
