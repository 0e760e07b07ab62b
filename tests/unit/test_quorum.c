/*  test_quorum.c - the commit rule (node/include/qkv_quorum.h).

    commit = max(current, min(leader_last, write_quorum-th highest match)),
    and leader_last when write_quorum is 0. Checked by hand for quorum 0..N,
    ties, the cap, match values that go down, and against a reference on
    seeded random inputs.
*/
#include "kit.h"
#include "qkv_quorum.h"

#include <stdlib.h>
#include <string.h>

static uint64_t commit(const uint64_t *match, size_t n, size_t quorum,
                       uint64_t last, uint64_t current) {
    return qkv_quorum_commit_index(match, n, quorum, last, current);
}

static void test_quorum_zero(void) {
    const uint64_t match[] = {0, 0, 0};
    CU_ASSERT(commit(match, 3, 0, 42, 0) == 42);
    CU_ASSERT(commit(NULL, 0, 0, 7, 0) == 7);
    CU_ASSERT(commit(NULL, 0, 0, 0, 0) == 0);
    CU_ASSERT(commit(match, 3, 0, 10, 12) == 12); /* never down */
}

static void test_each_quorum(void) {
    const uint64_t match[] = {5, 3, 9, 1, 7};
    const uint64_t expected[] = {10, 9, 7, 5, 3, 1};
    for (size_t q = 0; q <= 5; q++)
        CU_ASSERT(commit(match, 5, q, 10, 0) == expected[q]);
}

static void test_input_untouched(void) {
    uint64_t match[] = {5, 3, 9, 1, 7};
    const uint64_t copy[] = {5, 3, 9, 1, 7};
    commit(match, 5, 3, 10, 0);
    CU_ASSERT(memcmp(match, copy, sizeof copy) == 0);
}

static void test_cap_at_leader_last(void) {
    const uint64_t match[] = {12, 15, 11};
    CU_ASSERT(commit(match, 3, 1, 10, 0) == 10);
    CU_ASSERT(commit(match, 3, 3, 10, 0) == 10);
    CU_ASSERT(commit(match, 3, 3, 11, 0) == 11);
    CU_ASSERT(commit(match, 3, 2, 20, 0) == 12);
}

static void test_never_decreases(void) {
    uint64_t match[] = {8, 8, 8};
    uint64_t c = commit(match, 3, 2, 8, 0);
    CU_ASSERT(c == 8);
    /* Two followers restart and answer 0: the commit index stays. */
    match[0] = 0;
    match[1] = 0;
    c = commit(match, 3, 2, 9, c);
    CU_ASSERT(c == 8);
    match[0] = 9;
    c = commit(match, 3, 2, 9, c);
    CU_ASSERT(c == 8); /* only one follower at 9 */
    match[1] = 9;
    c = commit(match, 3, 2, 9, c);
    CU_ASSERT(c == 9);
    /* A current above everything is kept. */
    CU_ASSERT(commit(match, 3, 1, 3, 5) == 5);
}

static void test_ties(void) {
    const uint64_t match[] = {4, 4, 4, 2};
    CU_ASSERT(commit(match, 4, 1, 10, 0) == 4);
    CU_ASSERT(commit(match, 4, 3, 10, 0) == 4);
    CU_ASSERT(commit(match, 4, 4, 10, 0) == 2);
    const uint64_t same[] = {6, 6};
    CU_ASSERT(commit(same, 2, 2, 6, 0) == 6);
    const uint64_t zeros[] = {0, 0, 0};
    CU_ASSERT(commit(zeros, 3, 1, 6, 0) == 0);
}

static int s_desc(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static uint64_t reference(const uint64_t *match, size_t n, size_t q,
                          uint64_t last, uint64_t current) {
    uint64_t sorted[64];
    memcpy(sorted, match, n * sizeof *match);
    qsort(sorted, n, sizeof *sorted, s_desc);
    uint64_t rule = q == 0 ? last : sorted[q - 1];
    if (rule > last)
        rule = last;
    return rule > current ? rule : current;
}

static void test_random_against_reference(void) {
    kit_rng_t rng;
    kit_rng_seed(&rng, 1234);
    uint64_t match[64];
    int wrong = 0;
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + kit_rng_below(&rng, 64);
        size_t q = kit_rng_below(&rng, n + 1);
        uint64_t last = kit_rng_below(&rng, 1000);
        uint64_t current = kit_rng_below(&rng, last + 1);
        for (size_t i = 0; i < n; i++)
            match[i] = kit_rng_below(&rng, last + 50);
        if (round % 10 == 0)
            last = UINT64_MAX - kit_rng_below(&rng, 3);
        uint64_t got = commit(match, n, q, last, current);
        wrong += got != reference(match, n, q, last, current);
    }
    CU_ASSERT_EQUAL(wrong, 0);
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {KIT_TEST(test_quorum_zero),
                                       KIT_TEST(test_each_quorum),
                                       KIT_TEST(test_input_untouched),
                                       KIT_TEST(test_cap_at_leader_last),
                                       KIT_TEST(test_never_decreases),
                                       KIT_TEST(test_ties),
                                       KIT_TEST(test_random_against_reference),
                                       KIT_TESTS_END};
    return kit_add_suite("quorum", NULL, NULL, tests) ? 0 : -1;
}

int main(void) {
    return kit_run(s_add_suites);
}
