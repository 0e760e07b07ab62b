/*  kit.c - the test kit's runner, skipping, clock, polling, PRNG and JSON
    helpers. Processes live in kit_proc.c, HTTP in kit_http.c.
*/
#include "kit.h"

#include <CUnit/Basic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*  ---------------------------------------------------------------------
    Runner */

CU_pSuite kit_add_suite(const char *name, CU_InitializeFunc init,
                        CU_CleanupFunc cleanup, const kit_test_t *tests) {
    CU_pSuite suite = CU_add_suite(name, init, cleanup);
    if (!suite) {
        fprintf(stderr, "kit: cannot add suite %s: %s\n", name,
                CU_get_error_msg());
        return NULL;
    }
    for (const kit_test_t *t = tests; t && t->name; t++) {
        if (!CU_add_test(suite, t->name, t->fn)) {
            fprintf(stderr, "kit: cannot add test %s.%s: %s\n", name, t->name,
                    CU_get_error_msg());
            return NULL;
        }
    }
    return suite;
}

int kit_run(int (*add_suites)(void)) {
    if (CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "kit: %s\n", CU_get_error_msg());
        return 1;
    }
    if (add_suites() != 0) {
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_ErrorCode rc = CU_basic_run_tests();
    /* Read the counts now: CU_cleanup_registry zeroes them. */
    unsigned tests_failed = CU_get_number_of_tests_failed();
    unsigned failures = CU_get_number_of_failures();
    unsigned suites_failed = CU_get_number_of_suites_failed();
    unsigned tests_run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    kit_http_thread_done();
    printf("\nkit: %u tests run, %u failed, %u assertion failures, "
           "%u suites failed\n",
           tests_run, tests_failed, failures, suites_failed);
    if (rc != CUE_SUCCESS || tests_failed || failures || suites_failed)
        return 1;
    return 0;
}

bool kit_str_eq(const char *actual, const char *expected) {
    if (actual && expected && strcmp(actual, expected) == 0)
        return true;
    fprintf(stderr, "\n  got \"%.200s\", expected \"%.200s\"\n",
            actual ? actual : "(null)", expected ? expected : "(null)");
    return false;
}

void kit_skip(const char *why, bool ci_must_run) {
    const char *ci = getenv("CI");
    fflush(stdout);
    if (ci_must_run && ci && strcmp(ci, "true") == 0) {
        fprintf(stderr, "FAIL: %s (CI=true: this must not be skipped)\n", why);
        exit(1);
    }
    printf("SKIP: %s\n", why);
    fflush(stdout);
    exit(KIT_SKIP_CODE);
}

/*  ---------------------------------------------------------------------
    Time, polling, randomness */

int64_t kit_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_pause_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

bool kit_poll_until(int timeout_ms, kit_pred_fn *pred, void *arg) {
    int64_t deadline = kit_now_ms() + timeout_ms;
    int pause = 5;
    kit_http_set_quiet(true);
    while (!pred(arg)) {
        int64_t left = deadline - kit_now_ms();
        if (kit_any_node_exited()) {
            fprintf(stderr, "kit: a node exited; not waiting any longer\n");
            left = 0;
        }
        if (left <= 0) {
            bool last = pred(arg);
            kit_http_set_quiet(false);
            return last;
        }
        s_pause_ms(pause < left ? pause : (int)left);
        if (pause < 100)
            pause *= 2;
    }
    kit_http_set_quiet(false);
    return true;
}

void kit_rng_seed(kit_rng_t *rng, uint64_t seed) {
    rng->state = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

uint64_t kit_rng_next(kit_rng_t *rng) {
    uint64_t x = rng->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng->state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

uint64_t kit_rng_below(kit_rng_t *rng, uint64_t bound) {
    return bound ? kit_rng_next(rng) % bound : 0;
}

void kit_random_tag(char tag[9]) {
    uint32_t r = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, &r, sizeof r) != (ssize_t)sizeof r)
        r = (uint32_t)getpid() ^ (uint32_t)kit_now_ms();
    if (fd >= 0)
        close(fd);
    snprintf(tag, 9, "%08x", r);
}

/*  ---------------------------------------------------------------------
    JSON helpers */

static json_t *s_parse_object(const kit_resp_t *resp, const char *url) {
    json_error_t error;
    json_t *json =
        json_loadb(resp->body, resp->body_len, JSON_ALLOW_NUL, &error);
    if (json && json_is_object(json))
        return json;
    fprintf(stderr,
            "kit: %s answered %ld with a body that is not a JSON "
            "object (%s): %.300s\n",
            url, resp->status, json ? "not an object" : error.text, resp->body);
    json_decref(json);
    return NULL;
}

json_t *kit_json_parse(const char *body, size_t len) {
    return json_loadb(body, len, JSON_ALLOW_NUL, NULL);
}

json_t *kit_get_json(const char *url, long *status) {
    kit_resp_t resp;
    *status = 0;
    if (kit_http("GET", url, NULL, 0, &resp) != 0)
        return NULL;
    *status = resp.status;
    json_t *json = s_parse_object(&resp, url);
    kit_resp_free(&resp);
    return json;
}

json_t *kit_post_json(const char *url, const json_t *body, long *status,
                      char **location) {
    kit_resp_t resp;
    *status = 0;
    if (location)
        *location = NULL;
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text)
        return NULL;
    int rc = kit_http("POST", url, text, strlen(text), &resp);
    free(text);
    if (rc != 0)
        return NULL;
    *status = resp.status;
    if (location) {
        *location = resp.location;
        resp.location = NULL;
    }
    json_t *json = s_parse_object(&resp, url);
    kit_resp_free(&resp);
    return json;
}

const char *kit_json_str(const json_t *obj, const char *field) {
    json_t *v = json_object_get(obj, field);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

bool kit_json_u64(const json_t *obj, const char *field, uint64_t *out) {
    json_t *v = json_object_get(obj, field);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}
