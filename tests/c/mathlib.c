/* libm through --lib m: functions resolved only after libm is opened. */
#include <math.h>
#include <stdio.h>

int main(void) {
  double x = 0.5;
  printf("sin %.6f cos %.6f\n", sin(x), cos(x));
  printf("exp %.6f log %.6f\n", exp(x), log(x + 1));
  printf("pow %.3f hypot %.3f\n", pow(2.0, 10.5), hypot(3.0, 4.0));
  printf("floor %.1f ceil %.1f fmod %.2f\n", floor(-2.5), ceil(-2.5), fmod(10.0, 3.3));
  return (int)cbrt(27.0);
}
