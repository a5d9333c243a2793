#include "demo.h"

int is_prime(long n) {
    if (n < 2) return 0;
    for (long d = 2; d * d <= n; d++)
        if (n % d == 0) return 0;
    return 1;
}

long count_primes(long limit) {
    long count = 0;
    for (long i = 2; i < limit; i++) count += is_prime(i);
    return count;
}
