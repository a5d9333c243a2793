extern int shared_counter;
extern const char library_name[];
void accumulate(long v);
long total(void);
int twice(int x);
int apply(int (*f)(int), int x);
long fib(int n);
