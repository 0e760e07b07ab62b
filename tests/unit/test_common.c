/*  test_common.c - the helpers of common/: the ring (growth while wrapped,
    pops, truncation), the one JSON escaper (control bytes, DEL, ill-formed
    UTF-8 replaced once per maximal subpart), the buffer's bounds and the
    stable content hash.
*/
#include "kit.h"
#include "qkv_buf.h"
#include "qkv_hash.h"
#include "qkv_json.h"
#include "qkv_key.h"
#include "qkv_ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* qkv_hash_bytes of fixed inputs, as computed once: they must not move */
#define HASH_EMPTY 0xb98d4c6a78a1bcb4ULL
#define HASH_A 0x2cf3b7676de9edceULL
#define HASH_FOOBAR 0xb0a2290c1214a2eaULL
#define HASH_17 0xc7dfc6fbde46b09dULL

static void test_ring_fifo_and_growth(void) {
    qkv_ring_t ring;
    qkv_ring_init(&ring, sizeof(uint64_t));
    CU_ASSERT(qkv_ring_first(&ring) == NULL);
    CU_ASSERT(qkv_ring_last(&ring) == NULL);
    uint64_t next_in = 1, next_out = 1;
    /* push and pop at different rates so the ring wraps and then grows
       while wrapped, many times */
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 13; i++) {
            uint64_t *slot = qkv_ring_push(&ring);
            CU_ASSERT_FATAL(slot != NULL);
            *slot = next_in++;
        }
        for (int i = 0; i < 7 && ring.count; i++) {
            CU_ASSERT_EQUAL(*(uint64_t *)qkv_ring_first(&ring), next_out);
            next_out++;
            qkv_ring_pop(&ring, 1);
        }
        /* every element in order, reachable by position */
        for (size_t i = 0; i < ring.count; i++)
            if (*(uint64_t *)qkv_ring_at(&ring, i) != next_out + i) {
                CU_FAIL("element out of order");
                break;
            }
        CU_ASSERT_EQUAL(*(uint64_t *)qkv_ring_last(&ring), next_in - 1);
    }
    CU_ASSERT_EQUAL(ring.count, next_in - next_out);
    qkv_ring_truncate(&ring, 5);
    CU_ASSERT_EQUAL(ring.count, 5);
    CU_ASSERT_EQUAL(*(uint64_t *)qkv_ring_last(&ring), next_out + 4);
    qkv_ring_pop(&ring, 100);
    CU_ASSERT_EQUAL(ring.count, 0);
    CU_ASSERT(qkv_ring_first(&ring) == NULL);
    qkv_ring_free(&ring);
    CU_ASSERT(ring.data == NULL && ring.cap == 0);
}

static void test_ring_reserve(void) {
    qkv_ring_t ring;
    qkv_ring_init(&ring, 24);
    CU_ASSERT_EQUAL(qkv_ring_reserve(&ring, 100), 0);
    CU_ASSERT(ring.cap >= 100);
    CU_ASSERT((ring.cap & (ring.cap - 1)) == 0);
    CU_ASSERT_EQUAL(qkv_ring_reserve(&ring, (size_t)-1), -1);
    CU_ASSERT_EQUAL(ring.count, 0);
    qkv_ring_free(&ring);
}

/* A ring never popped is a growable array: in order from data[0],
   through growth and after a truncate to 0, even one that was popped. */
static void test_ring_as_array(void) {
    qkv_ring_t ring;
    qkv_ring_init(&ring, sizeof(uint64_t));
    for (int round = 0; round < 2; round++) {
        for (uint64_t i = 0; i < 1000; i++)
            *(uint64_t *)qkv_ring_push(&ring) = i;
        const uint64_t *all = (const uint64_t *)ring.data;
        int in_order = 1;
        for (uint64_t i = 0; i < 1000; i++)
            in_order &= all[i] == i;
        CU_ASSERT(in_order);
        qkv_ring_pop(&ring, 3);      /* the head moves ... */
        qkv_ring_truncate(&ring, 0); /* ... and comes back */
    }
    qkv_ring_free(&ring);
}

static void test_ring_shrink(void) {
    qkv_ring_t ring;
    qkv_ring_init(&ring, sizeof(uint64_t));
    for (uint64_t i = 0; i < 1000; i++)
        *(uint64_t *)qkv_ring_push(&ring) = i;
    size_t big = ring.cap;
    /* pop most of it so the rest wraps after more pushes, then shrink */
    qkv_ring_pop(&ring, 990);
    for (uint64_t i = 1000; i < 1010; i++)
        *(uint64_t *)qkv_ring_push(&ring) = i;
    while (ring.count * 4 <= ring.cap && ring.cap > 16) {
        size_t before = ring.cap;
        qkv_ring_shrink(&ring);
        CU_ASSERT_FATAL(ring.cap < before);
    }
    CU_ASSERT(ring.cap < big && ring.cap >= ring.count);
    CU_ASSERT_EQUAL(ring.count, 20);
    for (size_t i = 0; i < ring.count; i++)
        CU_ASSERT_EQUAL(*(uint64_t *)qkv_ring_at(&ring, i), 990 + i);
    size_t cap = ring.cap;
    qkv_ring_shrink(&ring); /* a quarter or more used: nothing */
    CU_ASSERT_EQUAL(ring.cap, cap);
    qkv_ring_free(&ring);
}

/* Escapes len bytes and compares with the expected JSON text. */
static void expect_json(const char *in, size_t len, const char *want) {
    qkv_buf_t buf = {0};
    CU_ASSERT_EQUAL(qkv_json_string(&buf, in, len), 0);
    KIT_ASSERT_STR(buf.data, want);
    qkv_buf_free(&buf);
}

/* CRC-32C: the standard check value, continuation, and the slicing path
   (eight bytes at a time) agreeing with the byte path. */
static void test_crc32c(void) {
    CU_ASSERT_EQUAL(qkv_crc32c(0, "123456789", 9), 0xE3069283u);
    CU_ASSERT_EQUAL(qkv_crc32c(0, "", 0), 0);
    uint32_t part = qkv_crc32c(0, "1234", 4);
    CU_ASSERT_EQUAL(qkv_crc32c(part, "56789", 5), 0xE3069283u);
    char buf[100];
    for (int i = 0; i < 100; i++)
        buf[i] = (char)(i * 7);
    uint32_t whole = qkv_crc32c(0, buf, sizeof buf), bytes = 0;
    for (int i = 0; i < 100; i++)
        bytes = qkv_crc32c(bytes, buf + i, 1);
    CU_ASSERT_EQUAL(whole, bytes);
}

static void test_json_escaping(void) {
    expect_json("plain", 5, "\"plain\"");
    expect_json("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    expect_json("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"");
    expect_json("\0\x01\x1f", 3, "\"\\u0000\\u0001\\u001f\"");
    expect_json("\x7f", 1, "\"\x7f\""); /* DEL goes out as it is */
    expect_json("\xc3\xa9", 2, "\"\xc3\xa9\"");
    expect_json("\xf0\x9f\x98\x80", 4, "\"\xf0\x9f\x98\x80\"");
    /* one U+FFFD per maximal ill-formed subpart */
    expect_json("\xe2\x82", 2, "\"\\ufffd\"");
    expect_json("\xe2\x82"
                "A",
                3, "\"\\ufffdA\"");
    expect_json("\xe2\x41", 2, "\"\\ufffdA\"");
    expect_json("\x80\x80", 2, "\"\\ufffd\\ufffd\"");
    expect_json("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");            /* overlong */
    expect_json("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
    expect_json("\xf4\x90\x80\x80", 4,
                "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
    expect_json("\xf0\x9f\x98", 3, "\"\\ufffd\"");
}

static void test_json_members(void) {
    qkv_buf_t buf = {0};
    qkv_json_char(&buf, '{');
    qkv_json_member_cstr(&buf, "k", "v");
    qkv_json_member_u64(&buf, "n", UINT64_MAX);
    qkv_json_member_bool(&buf, "b", false);
    qkv_json_member_seconds(&buf, "s", 1234567);
    qkv_json_char(&buf, '}');
    KIT_ASSERT_STR(buf.data, "{\"k\":\"v\",\"n\":18446744073709551615,"
                             "\"b\":false,\"s\":1.234567}");
    qkv_buf_free(&buf);
}

static void test_buf_bounds(void) {
    qkv_buf_t buf = {0};
    CU_ASSERT_EQUAL(qkv_buf_append(&buf, "ab", 2), 0);
    CU_ASSERT_EQUAL(qkv_buf_reserve(&buf, (size_t)-1), -1);
    CU_ASSERT(buf.failed);
    CU_ASSERT_EQUAL(qkv_buf_append(&buf, "c", 1), -1);
    qkv_buf_reset(&buf); /* forgets the failure */
    CU_ASSERT_EQUAL(qkv_buf_printf(&buf, "%d-%s", 7, "x"), 0);
    KIT_ASSERT_STR(buf.data, "7-x");
    qkv_buf_free(&buf);
}

static void test_xorshift(void) {
    uint64_t a = 1, b = 1;
    CU_ASSERT(qkv_xorshift64(&a) == 1082269761ull); /* by hand */
    CU_ASSERT(a == 1082269761ull);
    qkv_xorshift64(&b);
    for (int i = 0; i < 1000; i++) /* the same seed, the same run */
        CU_ASSERT(qkv_xorshift64(&a) == qkv_xorshift64(&b) && a != 0);
}

static void test_hash_stable(void) {
    /* sessions compare these across nodes: the values are part of the
       replicated state and must never change */
    CU_ASSERT_EQUAL(qkv_hash_bytes(QKV_HASH_SEED, "", 0),
                    qkv_hash_bytes(QKV_HASH_SEED, "", 0));
    uint64_t fixed[] = {qkv_hash_bytes(QKV_HASH_SEED, "", 0),
                        qkv_hash_bytes(QKV_HASH_SEED, "a", 1),
                        qkv_hash_bytes(QKV_HASH_SEED, "foobar", 6),
                        qkv_hash_bytes(QKV_HASH_SEED, "0123456789abcdef!", 17)};
    const uint64_t want[] = {HASH_EMPTY, HASH_A, HASH_FOOBAR, HASH_17};
    for (size_t i = 0; i < 4; i++) {
        if (fixed[i] != want[i])
            fprintf(stderr, "\n  hash %zu: 0x%016llx\n", i,
                    (unsigned long long)fixed[i]);
        CU_ASSERT_EQUAL(fixed[i], want[i]);
    }
    /* lengths and tails count */
    CU_ASSERT(qkv_hash_bytes(QKV_HASH_SEED, "a\0", 2) != fixed[1]);
    CU_ASSERT(qkv_hash_bytes(QKV_HASH_SEED, "0123456789abcdef", 16) !=
              qkv_hash_bytes(QKV_HASH_SEED, "0123456789abcdeg", 16));
    CU_ASSERT(qkv_hash_bytes(1, "a", 1) != fixed[1]);
    CU_ASSERT(qkv_hash_mix(1) != qkv_hash_mix(2));
}

#define KEY1 "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"

static void test_key_text(void) {
    CU_ASSERT(qkv_key_text(KEY1));
    CU_ASSERT(!qkv_key_text(""));
    CU_ASSERT(!qkv_key_text("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hI"));
    CU_ASSERT(!qkv_key_text(KEY1 "x"));
    CU_ASSERT(!qkv_key_text("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{h~D"));
    CU_ASSERT(!qkv_key_text("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{h D"));
}

static void test_key_files(void) {
    char dir[] = "/tmp/qkv-test-keys-XXXXXX", path[64], key[41], err[256];
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/a.key", dir);
    CU_ASSERT_EQUAL(qkv_key_write(path, KEY1, true, "c", err, sizeof err), 0);
    struct stat st;
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    CU_ASSERT_EQUAL(qkv_key_read(path, true, key, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(key, KEY1);
    /* never replaced */
    CU_ASSERT_EQUAL(qkv_key_write(path, KEY1, true, "c", err, sizeof err), -1);
    /* a secret others may read is refused, a public one is not */
    CU_ASSERT_EQUAL(chmod(path, 0640), 0);
    CU_ASSERT_EQUAL(qkv_key_read(path, true, key, err, sizeof err), -1);
    CU_ASSERT(strstr(err, "others may read") != NULL);
    CU_ASSERT(strstr(err, KEY1) == NULL);
    CU_ASSERT_EQUAL(qkv_key_read(path, false, key, err, sizeof err), 0);
    unlink(path);
    /* comments, blank lines and CRLF around the key; junk refused */
    const char *texts[] = {"# c\n\n" KEY1 "\r\n", "x\n" KEY1 "\n", "",
                           KEY1 "0"};
    const int want[] = {0, -1, -1, -1};
    for (int i = 0; i < 4; i++) {
        FILE *f = fopen(path, "w");
        CU_ASSERT_FATAL(f != NULL);
        fputs(texts[i], f);
        fclose(f);
        chmod(path, 0600);
        CU_ASSERT_EQUAL(qkv_key_read(path, true, key, err, sizeof err),
                        want[i]);
        unlink(path);
    }
    CU_ASSERT_EQUAL(qkv_key_read(path, true, key, err, sizeof err), -1);
    rmdir(dir);
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {KIT_TEST(test_ring_fifo_and_growth),
                                       KIT_TEST(test_ring_reserve),
                                       KIT_TEST(test_ring_shrink),
                                       KIT_TEST(test_ring_as_array),
                                       KIT_TEST(test_json_escaping),
                                       KIT_TEST(test_crc32c),
                                       KIT_TEST(test_json_members),
                                       KIT_TEST(test_buf_bounds),
                                       KIT_TEST(test_hash_stable),
                                       KIT_TEST(test_xorshift),
                                       KIT_TEST(test_key_text),
                                       KIT_TEST(test_key_files),
                                       KIT_TESTS_END};
    return kit_add_suite("common", NULL, NULL, tests) ? 0 : -1;
}

int main(void) {
    return kit_run(s_add_suites);
}
