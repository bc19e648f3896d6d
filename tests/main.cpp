// main.cpp — the doctest runner shared by the CPU and GPU suites.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
