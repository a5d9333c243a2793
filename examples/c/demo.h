/* Shared declarations of the C demo program: each .c file here is one cached unit. */
#ifndef DEMO_H
#define DEMO_H
#include <stddef.h>
#include <stdint.h>

uint64_t fnv1a(const char *s);
int is_prime(long n);
long count_primes(long limit);
void sort_longs(long *xs, size_t n);
long median(long *xs, size_t n);
void matmul(const double *a, const double *b, double *out, int n);
double trace(const double *m, int n);
size_t word_count(const char *text);
void reverse_words(const char *in, char *out, size_t cap);
long collatz_steps(long n);
long fib_memo(int n);

typedef long (*long_fn)(long);
extern const long_fn numeric_table[];
extern const char *const numeric_names[];
extern const int numeric_count;
#endif
