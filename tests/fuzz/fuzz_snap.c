/*  fuzz_snap.c - libFuzzer target: the snapshot reader
    (node/include/qkv_snap.h: qkv_snap_check, qkv_snap_apply and
    qkv_snap_load_newest, and through them qkv_sessions_load) on hostile
    images (docs/DATA.md, "Snapshots").

    The input:
      byte 0      bit 0: make the trailing checksum right, so that
                  mutations reach the keys and sessions; bit 1: load it
                  from a file snap-INDEX.snap (INDEX from its header) in
                  a scratch directory under /tmp; bits 2-3: the session
                  window (1, 3, 100, 100000)
      the rest    the image
    An image is refused with a reason or applied; one that applies gives
    the header's index, encodes (qkv_snap_encode) into an image that
    applies to the same keys and sessions, and leaves sessions that take
    more writes and expire without harm.

    Seeds: corpus/fuzz_snap/ (images of stores with keys and sessions,
    from fuzz_seeds).
*/
#include "fuzz.h"
#include "qkv_hash.h"
#include "qkv_le.h"
#include "qkv_sessions.h"
#include "qkv_snap.h"
#include "qkv_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_HEAD_BYTES 48 /* magic, version, reserved, four u64 */

static const size_t s_windows[4] = {1, 3, 100, 100000};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_quiet();
    fuzz_dir();
    return 0;
}

typedef struct {
    qkv_store_t *other; /* the store to find each key in */
    bool same;
} s_cmp_t;

static void s_visit(void *arg, const char *key, size_t key_len,
                    const char *value, size_t value_len, uint64_t seq,
                    uint64_t index) {
    s_cmp_t *c = arg;
    qkv_buf_t v = {0};
    uint64_t s = 0, i = 0;
    int found = qkv_store_get(c->other, key, key_len, &v, &s, &i);
    if (found != 1 || v.size != value_len ||
        !fuzz_same(v.data, value, value_len) || s != seq || i != index)
        c->same = false;
    qkv_buf_free(&v);
}

/* Every key of a is in b with the same value, seq and index, and both
   hold as many. */
static bool s_same_store(qkv_store_t *a, qkv_store_t *b) {
    if (qkv_store_count(a) != qkv_store_count(b) ||
        qkv_store_applied_index(a) != qkv_store_applied_index(b))
        return false;
    s_cmp_t c = {b, true};
    uint64_t cursor = 0;
    do
        qkv_store_scan(a, &cursor, 1024, SIZE_MAX, s_visit, &c);
    while (cursor && c.same);
    return c.same;
}

/* The two tables save to the same bytes. */
static bool s_same_sessions(const qkv_sessions_t *a, const qkv_sessions_t *b) {
    qkv_buf_t x = {0}, y = {0};
    bool same = qkv_sessions_save(a, &x) == 0 &&
                qkv_sessions_save(b, &y) == 0 && x.size == y.size &&
                fuzz_same(x.data, y.data, x.size);
    qkv_buf_free(&x);
    qkv_buf_free(&y);
    return same;
}

/* Uses loaded sessions as the state machine would: a few tagged writes
   (judged, reserved, recorded), then time passing. */
static void s_use_sessions(qkv_sessions_t *s) {
    for (uint64_t id = 1; id <= 3; id++)
        for (uint64_t seq = 1; seq <= 3; seq++) {
            uint64_t hash = qkv_hash_mix(id * 31 + seq);
            const qkv_session_rec_t *rec = NULL;
            qkv_session_verdict_t v =
                qkv_sessions_check(s, id, seq, hash, &rec);
            FUZZ_CHECK(v >= QKV_SESSION_NEW && v <= QKV_SESSION_EXPIRED);
            if (v == QKV_SESSION_RETRY)
                FUZZ_CHECK(rec != NULL);
            if (v != QKV_SESSION_NEW)
                continue;
            if (qkv_sessions_reserve(s, id, seq) != 0)
                continue;
            FUZZ_CHECK(qkv_sessions_record(s, id, seq, hash, 1000 + seq, seq,
                                           UINT64_MAX / 2) == 0);
            FUZZ_CHECK(qkv_sessions_check(s, id, seq, hash, &rec) ==
                           QKV_SESSION_RETRY &&
                       rec && rec->index == 1000 + seq);
        }
    qkv_sessions_tick(s, UINT64_MAX - 1);
}

/* Applies an image that was checked: the state as the header says; then
   the round trip through the encoder. */
static void s_applied(const qkv_snap_meta_t *meta, qkv_store_t *store,
                      qkv_sessions_t *sessions, size_t window) {
    FUZZ_CHECK(qkv_store_applied_index(store) == meta->index);
    FUZZ_CHECK(qkv_store_count(store) <= meta->keys);
    FUZZ_CHECK(qkv_sessions_count(sessions) <= window &&
               qkv_sessions_records(sessions) <= window);

    qkv_snap_meta_t m2 = *meta;
    qkv_buf_t image = {0};
    if (qkv_snap_encode(store, sessions, &m2, &image) == 0) {
        char why[256] = "";
        FUZZ_CHECK(m2.keys == qkv_store_count(store));
        qkv_store_t *store2 = qkv_store_new();
        qkv_sessions_t *sessions2 = qkv_sessions_new(window, 1000000);
        FUZZ_CHECK(store2 && sessions2);
        int rc = qkv_snap_apply(image.data, image.size, store2, sessions2, why,
                                sizeof(why));
        if (rc != 0)
            dprintf(2, "fuzz_snap: the re-encoded image refused: %s\n", why);
        FUZZ_CHECK(rc == 0);
        FUZZ_CHECK(s_same_store(store, store2));
        FUZZ_CHECK(s_same_sessions(sessions, sessions2));
        qkv_store_destroy(&store2);
        qkv_sessions_destroy(&sessions2);
    }
    qkv_buf_free(&image);
    s_use_sessions(sessions);
}

static void s_from_memory(const uint8_t *img, size_t size, size_t window) {
    char why[256] = "";
    qkv_snap_meta_t meta;
    if (qkv_snap_check(img, size, &meta, why, sizeof(why)) != 0) {
        FUZZ_CHECK(why[0] != '\0');
        return;
    }
    FUZZ_CHECK(size >= S_HEAD_BYTES + 4);
    FUZZ_CHECK(meta.index == qkv_get_le64(img + 24) &&
               meta.keys == qkv_get_le64(img + 40));
    qkv_store_t *store = qkv_store_new();
    qkv_sessions_t *sessions = qkv_sessions_new(window, 1000000);
    FUZZ_CHECK(store && sessions);
    if (qkv_snap_apply(img, size, store, sessions, why, sizeof(why)) == 0) {
        s_applied(&meta, store, sessions, window);
    } else {
        FUZZ_CHECK(why[0] != '\0');
        /* the contract: clear both, and they serve again */
        qkv_store_clear(store);
        qkv_sessions_clear(sessions);
        FUZZ_CHECK(qkv_store_count(store) == 0 &&
                   qkv_sessions_count(sessions) == 0);
        s_use_sessions(sessions);
    }
    qkv_store_destroy(&store);
    qkv_sessions_destroy(&sessions);
}

static void s_from_file(const uint8_t *img, size_t size, size_t window) {
    uint64_t index = size >= S_HEAD_BYTES ? qkv_get_le64(img + 24) : 1;
    char name[64];
    snprintf(name, sizeof(name), "snap-%016" PRIx64 ".snap", index);
    fuzz_dir_clear();
    fuzz_write_file(name, img, size);
    qkv_store_t *store = qkv_store_new();
    qkv_sessions_t *sessions = qkv_sessions_new(window, 1000000);
    FUZZ_CHECK(store && sessions);
    qkv_snap_meta_t meta;
    uint64_t bytes = 0;
    char err[1024] = "";
    int rc = qkv_snap_load_newest(fuzz_dir(), store, sessions, &meta, &bytes,
                                  err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc == 0 && bytes) {
        FUZZ_CHECK(meta.index == index && bytes == size);
        s_applied(&meta, store, sessions, window);
    } else if (rc == 0) {
        FUZZ_CHECK(meta.index == 0); /* refused as damaged: none loaded */
    } else {
        FUZZ_CHECK(err[0] != '\0');
    }
    qkv_store_destroy(&store);
    qkv_sessions_destroy(&sessions);
    fuzz_dir_clear();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    size_t window = s_windows[(flags >> 2) & 3];
    /* an exact-size copy: AddressSanitizer sees a read past its end */
    size_t len = size - 1;
    uint8_t *img = malloc(len ? len : 1);
    if (!img)
        return 0;
    memcpy(img, data + 1, len);
    if ((flags & 1) && len >= 4)
        qkv_put_le32(img + len - 4, qkv_crc32c(0, img, len - 4));
    if (flags & 2)
        s_from_file(img, len, window);
    else
        s_from_memory(img, len, window);
    free(img);
    return 0;
}
