/* check.h: the assertion macros and runner every ftsan unit-test binary uses. */
#ifndef FTSAN_CHECK_H
#define FTSAN_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each test binary defines its tests with TEST(name) and lists them in main() with RUN(name).
 * A failed CHECK prints both values and fails the current test; the binary prints a closing
 * "N passed, N failed" line and exits non-zero when anything failed. */
static int check__failed_in_test;
static int check__passed, check__failed;

#define TEST(name) static void test_##name(void)
#define RUN(name)                                                            \
  do {                                                                       \
    check__failed_in_test = 0;                                               \
    test_##name();                                                           \
    if (check__failed_in_test) { check__failed++; printf("FAIL %s\n", #name); } \
    else { check__passed++; printf("ok   %s\n", #name); }                    \
  } while (0)
#define CHECK_DONE()                                                         \
  (printf("%d passed, %d failed\n", check__passed, check__failed),          \
   check__failed ? 1 : 0)

#define CHECK__FAIL(fmt, ...)                                                \
  do {                                                                       \
    printf("  %s:%d: " fmt "\n", __FILE__, __LINE__, __VA_ARGS__);           \
    check__failed_in_test = 1;                                               \
  } while (0)

#define CHECK(cond)                                                          \
  do { if (!(cond)) CHECK__FAIL("CHECK(%s) failed", #cond); } while (0)
#define CHECK_EQ(a, b)                                                       \
  do {                                                                       \
    long long check__a = (long long)(a), check__b = (long long)(b);          \
    if (check__a != check__b)                                                \
      CHECK__FAIL("CHECK_EQ(%s, %s): %lld != %lld", #a, #b, check__a, check__b); \
  } while (0)
#define CHECK_NE(a, b)                                                       \
  do {                                                                       \
    long long check__a = (long long)(a), check__b = (long long)(b);          \
    if (check__a == check__b)                                                \
      CHECK__FAIL("CHECK_NE(%s, %s): both %lld", #a, #b, check__a);          \
  } while (0)
#define CHECK_STR(a, b)                                                      \
  do {                                                                       \
    const char *check__a = (a), *check__b = (b);                             \
    if (!check__a || !check__b || strcmp(check__a, check__b) != 0)           \
      CHECK__FAIL("CHECK_STR(%s, %s): \"%s\" != \"%s\"", #a, #b,             \
                  check__a ? check__a : "(null)", check__b ? check__b : "(null)"); \
  } while (0)

#endif
