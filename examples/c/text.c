#include <ctype.h>
#include <string.h>
#include "demo.h"

uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) { h ^= (unsigned char)*s++; h *= 1099511628211ull; }
    return h;
}

size_t word_count(const char *text) {
    size_t words = 0;
    int in_word = 0;
    for (; *text; text++) {
        if (isspace((unsigned char)*text)) in_word = 0;
        else if (!in_word) { in_word = 1; words++; }
    }
    return words;
}

void reverse_words(const char *in, char *out, size_t cap) {
    size_t len = strlen(in), o = 0;
    size_t end = len;
    while (end > 0 && o + 1 < cap) {
        size_t start = end;
        while (start > 0 && in[start - 1] != ' ') start--;
        for (size_t i = start; i < end && o + 1 < cap; i++) out[o++] = in[i];
        if (start > 0 && o + 1 < cap) out[o++] = ' ';
        end = start > 0 ? start - 1 : 0;
    }
    out[o] = '\0';
}
