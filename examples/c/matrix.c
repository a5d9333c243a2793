#include "demo.h"

void matmul(const double *a, const double *b, double *out, int n) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += a[i * n + k] * b[k * n + j];
            out[i * n + j] = s;
        }
}

double trace(const double *m, int n) {
    double t = 0;
    for (int i = 0; i < n; i++) t += m[i * n + i];
    return t;
}
