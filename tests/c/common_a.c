/* -fcommon: tentative definitions become COMMON symbols merged across objects. */
#include <stdio.h>

int common_counter;
double common_values[8];
int initialised_elsewhere;
void bump(void);

int main(void) {
  common_counter = 5;
  bump();
  bump();
  common_values[7] = 1.5;
  printf("counter %d, values[7] %.1f, initialised %d\n", common_counter, common_values[7], initialised_elsewhere);
  return common_counter;
}
