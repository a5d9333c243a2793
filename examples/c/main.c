#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "demo.h"

static int verbose;

int main(int argc, char **argv) {
    verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    printf("primes below 20000: %ld\n", count_primes(20000));
    long xs[] = {9, 2, 7, 4, 5, 1, 8, 3, 6};
    size_t n = sizeof xs / sizeof xs[0];
    printf("median: %ld\n", median(xs, n));
    double a[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, b[9] = {9, 8, 7, 6, 5, 4, 3, 2, 1}, c[9];
    matmul(a, b, c, 3);
    printf("trace(a*b): %.1f\n", trace(c, 3));
    const char *text = "the quick brown fox jumps over the lazy dog";
    char rev[128];
    reverse_words(text, rev, sizeof rev);
    printf("words: %zu, reversed: %s\n", word_count(text), rev);
    printf("fnv1a(\"jitcache\"): %016llx\n", (unsigned long long)fnv1a("jitcache"));
    for (int i = 0; i < numeric_count; i++)
        printf("%s(27) = %ld\n", numeric_names[i], numeric_table[i](27));
    if (verbose)
        printf("fib(80) = %ld\n", fib_memo(80));
    return 0;
}
