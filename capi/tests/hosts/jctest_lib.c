/* A shared library for c_host's jitcache_open_library check. */
int jctest_magic(void) { return 1234; }
