#include "demo.h"

long collatz_steps(long n) {
    long steps = 0;
    while (n != 1) { n = n % 2 ? 3 * n + 1 : n / 2; steps++; }
    return steps;
}

static long memo[100];

long fib_memo(int n) {
    if (n < 2) return n;
    if (memo[n]) return memo[n];
    return memo[n] = fib_memo(n - 1) + fib_memo(n - 2);
}

static long square(long x) { return x * x; }
static long fib_of(long x) { return fib_memo((int)(x % 90)); }
static long digits(long x) { long d = 1; while (x >= 10) { x /= 10; d++; } return d; }

/* A table of function pointers in data: relocations in .data.rel.ro. */
const long_fn numeric_table[] = {collatz_steps, square, fib_of, digits};
const char *const numeric_names[] = {"collatz_steps", "square", "fib", "digits"};
const int numeric_count = sizeof numeric_table / sizeof numeric_table[0];
