/*  test_linear.c - the test kit's linearizability checker (kit.h,
    "Histories"): it accepts what a register may show and rejects known
    non-linearizable histories, so that a cluster suite that finds its
    history linearizable has checked something.
*/
#include "kit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define W(k, v, c, r)                                                          \
    { k, true, v, false, c, r }
#define R(k, v, c, r)                                                          \
    { k, false, v, true, c, r }
#define ABSENT(k, c, r)                                                        \
    { k, false, NULL, false, c, r }
#define UNKNOWN INT64_MAX

static int s_check(const kit_op_t *ops, size_t n) {
    return kit_linearizable(ops, n, NULL);
}

#define CHECK(expected, ...)                                                   \
    do {                                                                       \
        const kit_op_t h[] = {__VA_ARGS__};                                    \
        CU_ASSERT_EQUAL(s_check(h, sizeof h / sizeof h[0]), expected);         \
    } while (0)

static void test_accepts(void) {
    /* sequential */
    CHECK(1, W("k", "a", 0, 1), R("k", "a", 2, 3), W("k", "b", 4, 5),
          R("k", "b", 6, 7));
    /* a read overlapping a write may see either value */
    CHECK(1, W("k", "a", 0, 1), W("k", "b", 2, 10), R("k", "a", 3, 4),
          R("k", "b", 5, 6));
    CHECK(1, W("k", "a", 0, 10), ABSENT("k", 1, 2), R("k", "a", 3, 4));
    /* a write with no answer takes effect later, or never */
    CHECK(1, W("k", "a", 0, 1), W("k", "b", 2, UNKNOWN), R("k", "a", 3, 4),
          R("k", "b", 10, 11));
    CHECK(1, W("k", "a", 0, 1), W("k", "b", 2, UNKNOWN), R("k", "a", 30, 40));
    /* keys are independent */
    CHECK(1, W("x", "a", 0, 1), W("y", "b", 2, 3), R("x", "a", 4, 5),
          R("y", "b", 4, 5));
    /* nothing at all */
    CU_ASSERT_EQUAL(kit_linearizable(NULL, 0, NULL), 1);
}

static void test_rejects(void) {
    /* a stale read: b was written and acknowledged before the read */
    CHECK(0, W("k", "a", 0, 1), W("k", "b", 2, 3), R("k", "a", 4, 5));
    /* a value nobody wrote */
    CHECK(0, W("k", "a", 0, 1), R("k", "z", 2, 3));
    /* a value before its write was sent */
    CHECK(0, R("k", "a", 0, 1), W("k", "a", 2, 3));
    /* once b was seen, a cannot come back */
    CHECK(0, W("k", "a", 0, 1), W("k", "b", 2, 10), R("k", "b", 3, 4),
          R("k", "a", 5, 6));
    /* absent after a write completed */
    CHECK(0, W("k", "a", 0, 1), ABSENT("k", 2, 3));
    /* an unknown write cannot be undone either */
    CHECK(0, W("k", "a", 0, 1), W("k", "b", 2, UNKNOWN), R("k", "b", 3, 4),
          R("k", "a", 5, 6));
    /* one bad key among good ones is named */
    const kit_op_t h[] = {W("x", "a", 0, 1), R("x", "a", 2, 3),
                          W("y", "a", 0, 1), W("y", "b", 2, 3),
                          R("y", "a", 4, 5)};
    const char *bad = NULL;
    CU_ASSERT_EQUAL(kit_linearizable(h, 5, &bad), 0);
    KIT_ASSERT_STR(bad, "y");
}

/* A long history of overlapping clients, made from a sequential run:
   linearizable; one read changed to an older value: not. */
static void test_long_history(void) {
    enum { N = 3000 };
    kit_op_t *h = calloc(N, sizeof(*h));
    char(*values)[16] = calloc(N, sizeof(*values));
    CU_ASSERT_FATAL(h != NULL && values != NULL);
    kit_rng_t rng;
    kit_rng_seed(&rng, 5);
    int64_t t = 0;
    int last = -1;
    for (int i = 0; i < N; i++) {
        /* each operation takes effect at t; its call and return stretch
           around it so that neighbours overlap */
        t += 10;
        int64_t call = t - (int64_t)kit_rng_below(&rng, 15);
        int64_t ret = t + (int64_t)kit_rng_below(&rng, 15);
        if (last < 0 || kit_rng_below(&rng, 3) == 0) {
            snprintf(values[i], sizeof values[i], "v%d", i);
            h[i] = (kit_op_t)W("k", values[i], call, ret);
            last = i;
        } else {
            h[i] = (kit_op_t)R("k", values[last], call, ret);
        }
    }
    int64_t t0 = kit_now_ms();
    CU_ASSERT_EQUAL(kit_linearizable(h, N, NULL), 1);
    /* a read, well after a later write completed, shows an old value */
    int changed = 0;
    for (int i = N / 2; i < N && !changed; i++)
        if (!h[i].write) {
            h[i].value = values[0];
            changed = 1;
        }
    CU_ASSERT_EQUAL(kit_linearizable(h, N, NULL), 0);
    printf("\n  %d operations checked twice in %lld ms", N,
           (long long)(kit_now_ms() - t0));
    free(h);
    free(values);
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {
        KIT_TEST(test_accepts), KIT_TEST(test_rejects),
        KIT_TEST(test_long_history), KIT_TESTS_END};
    return kit_add_suite("linearizability", NULL, NULL, tests) ? 0 : -1;
}

int main(void) {
    return kit_run(s_add_suites);
}
