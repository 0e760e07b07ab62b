/*  test_dedup.c - the leader's memory of idempotent writes
    (node/include/qkv_dedup.h).

    Find after add, results recorded only for applied indexes, the oldest
    forgotten first once the window is full (and still findable until
    then), many clients and sequence numbers through a small window, and
    the window bounds.
*/
#include "kit.h"
#include "qkv_dedup.h"

static void test_add_find_apply(void) {
    qkv_dedup_t *d = qkv_dedup_new(8);
    CU_ASSERT_FATAL(d != NULL);
    CU_ASSERT(qkv_dedup_find(d, 1, 1) == NULL);
    qkv_dedup_add(d, 1, 1, 10);
    qkv_dedup_add(d, 2, 1, 12);
    const qkv_dedup_rec_t *r = qkv_dedup_find(d, 1, 1);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT(r->index == 10 && !r->applied);
    CU_ASSERT(qkv_dedup_find(d, 1, 2) == NULL);
    CU_ASSERT(qkv_dedup_find(d, 2, 2) == NULL);
    /* entries 10 and 11 applied: only the record at 10 gets its result */
    uint64_t results[] = {7, 99};
    qkv_dedup_applied(d, 10, 2, results);
    r = qkv_dedup_find(d, 1, 1);
    CU_ASSERT(r->applied && r->result == 7);
    r = qkv_dedup_find(d, 2, 1);
    CU_ASSERT(!r->applied);
    uint64_t more[] = {3};
    qkv_dedup_applied(d, 12, 1, more);
    CU_ASSERT(qkv_dedup_find(d, 2, 1)->applied);
    CU_ASSERT(qkv_dedup_find(d, 2, 1)->result == 3);
    CU_ASSERT_EQUAL(qkv_dedup_count(d), 2);
    qkv_dedup_destroy(&d);
    CU_ASSERT(d == NULL);
    qkv_dedup_destroy(&d);
}

static void test_window(void) {
    qkv_dedup_t *d = qkv_dedup_new(100);
    CU_ASSERT_FATAL(d != NULL);
    for (uint64_t i = 1; i <= 1000; i++)
        qkv_dedup_add(d, 1 + i % 7, i, i);
    CU_ASSERT_EQUAL(qkv_dedup_count(d), 100);
    size_t found = 0, wrong = 0;
    for (uint64_t i = 1; i <= 1000; i++) {
        const qkv_dedup_rec_t *r = qkv_dedup_find(d, 1 + i % 7, i);
        if (r) {
            found++;
            wrong += r->index != i || i <= 900;
        }
    }
    CU_ASSERT_EQUAL(found, 100);
    CU_ASSERT_EQUAL(wrong, 0);
    /* results still land on the records that remain */
    uint64_t results[1000];
    for (int i = 0; i < 1000; i++)
        results[i] = (uint64_t)i + 1;
    qkv_dedup_applied(d, 1, 1000, results);
    const qkv_dedup_rec_t *r = qkv_dedup_find(d, 1 + 950 % 7, 950);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT(r->applied && r->result == 950);
    qkv_dedup_destroy(&d);
}

static void test_bounds(void) {
    CU_ASSERT(qkv_dedup_new(0) == NULL);
    qkv_dedup_t *d = qkv_dedup_new(1);
    CU_ASSERT_FATAL(d != NULL);
    qkv_dedup_add(d, 5, 5, 1);
    qkv_dedup_add(d, 5, 6, 2);
    CU_ASSERT(qkv_dedup_find(d, 5, 5) == NULL);
    CU_ASSERT(qkv_dedup_find(d, 5, 6) != NULL);
    qkv_dedup_destroy(&d);
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {KIT_TEST(test_add_find_apply),
                                       KIT_TEST(test_window),
                                       KIT_TEST(test_bounds), KIT_TESTS_END};
    return kit_add_suite("dedup", NULL, NULL, tests) ? 0 : -1;
}

int main(void) {
    return kit_run(s_add_suites);
}
