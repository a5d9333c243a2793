int common_counter;
double common_values[8];
int initialised_elsewhere = 64;

void bump(void) { common_counter += 10; initialised_elsewhere++; }
