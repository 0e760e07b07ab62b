/*  test_wait.c - the actor's wait (node/include/qkv_wait.h).

    Real ZeroMQ sockets over inproc, no processes: a message wakes the
    wait; a socket read to its end sleeps until the next one; a socket
    left with messages, or sent on, is asked again instead of slept on;
    plain descriptors and zero timeouts behave as poll(2)'s.
*/
#include "kit.h"
#include "qkv_wait.h"

#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void *s_ctx;

/* A connected PAIR of sockets on a fresh inproc endpoint. */
static void s_pair(void **a, void **b) {
    static int n;
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "inproc://test-wait-%d", n++);
    *a = zmq_socket(s_ctx, ZMQ_PAIR);
    *b = zmq_socket(s_ctx, ZMQ_PAIR);
    CU_ASSERT_FATAL(*a && *b);
    CU_ASSERT_FATAL(zmq_bind(*a, endpoint) == 0);
    CU_ASSERT_FATAL(zmq_connect(*b, endpoint) == 0);
}

static void s_close(void *a, void *b) {
    int linger = 0;
    zmq_setsockopt(a, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(b, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_close(a);
    zmq_close(b);
}

/* Reads every message waiting on socket; returns how many. */
static int s_drain(void *socket) {
    int n = 0;
    char buf[16];
    while (zmq_recv(socket, buf, sizeof(buf), ZMQ_DONTWAIT) >= 0)
        n++;
    return n;
}

static void test_message_wakes(void) {
    void *a, *b;
    s_pair(&a, &b);
    zmq_pollitem_t items[] = {{a, 0, ZMQ_POLLIN, 0}};
    qkv_wait_t *w = qkv_wait_new(items, 1);
    CU_ASSERT_FATAL(w != NULL);
    CU_ASSERT_EQUAL(qkv_wait(w, 0), 0); /* nothing yet */
    CU_ASSERT_EQUAL(items[0].revents, 0);
    for (int round = 0; round < 50; round++) {
        CU_ASSERT_EQUAL(zmq_send(b, "x", 1, 0), 1);
        CU_ASSERT_EQUAL(qkv_wait(w, 1000), 1);
        CU_ASSERT_EQUAL(items[0].revents, ZMQ_POLLIN);
        CU_ASSERT_EQUAL(s_drain(a), 1);
        qkv_wait_drained(w, 0);
        /* read to its end: no event until the next message */
        CU_ASSERT_EQUAL(qkv_wait(w, 0), 0);
        CU_ASSERT_EQUAL(items[0].revents, 0);
    }
    qkv_wait_destroy(&w);
    CU_ASSERT(w == NULL);
    s_close(a, b);
}

/* A socket with events that was not read to the end is asked again, and
   reported, though its descriptor will not signal again. */
static void test_left_unread(void) {
    void *a, *b;
    s_pair(&a, &b);
    zmq_pollitem_t items[] = {{a, 0, ZMQ_POLLIN, 0}};
    qkv_wait_t *w = qkv_wait_new(items, 1);
    CU_ASSERT_FATAL(w != NULL);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(zmq_send(b, "x", 1, 0), 1);
    int read = 0;
    char buf[4];
    for (int turn = 0; turn < 5 && read < 3; turn++) {
        CU_ASSERT_EQUAL_FATAL(qkv_wait(w, 100), 1);
        CU_ASSERT_EQUAL(zmq_recv(a, buf, sizeof(buf), ZMQ_DONTWAIT), 1);
        read++; /* one per turn: never drained */
    }
    CU_ASSERT_EQUAL(read, 3);
    CU_ASSERT_EQUAL(qkv_wait(w, 0), 0); /* asked: empty now */
    qkv_wait_destroy(&w);
    s_close(a, b);
}

/* Sends on the socket itself may take the command that would have woken
   the wait: marked touched, it is asked before the wait sleeps. */
static void test_touched(void) {
    void *a, *b;
    s_pair(&a, &b);
    zmq_pollitem_t items[] = {{a, 0, ZMQ_POLLIN, 0}};
    qkv_wait_t *w = qkv_wait_new(items, 1);
    CU_ASSERT_FATAL(w != NULL);
    CU_ASSERT_EQUAL(qkv_wait(w, 0), 0);
    int missed = 0;
    for (int round = 0; round < 200; round++) {
        CU_ASSERT_EQUAL(zmq_send(b, "x", 1, 0), 1);
        /* a takes its commands while sending, as the actor's client
           socket does when it answers */
        CU_ASSERT_EQUAL(zmq_send(a, "y", 1, 0), 1);
        qkv_wait_touched(w, 0);
        if (qkv_wait(w, 100) != 1 && ++missed > 3)
            break; /* it would have slept with a message waiting */
        CU_ASSERT_EQUAL(s_drain(a), 1);
        qkv_wait_drained(w, 0);
        CU_ASSERT_EQUAL(s_drain(b), 1);
    }
    CU_ASSERT_EQUAL(missed, 0);
    qkv_wait_destroy(&w);
    s_close(a, b);
}

/* Plain descriptors beside sockets; one busy socket never hides another
   item that is ready. */
static void test_descriptors_and_fairness(void) {
    void *a, *b;
    s_pair(&a, &b);
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CU_ASSERT_FATAL(fd >= 0);
    int unused = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    zmq_pollitem_t items[] = {
        {a, 0, ZMQ_POLLIN, 0}, {NULL, fd, ZMQ_POLLIN, 0}, {NULL, unused, 0, 0}};
    qkv_wait_t *w = qkv_wait_new(items, 3);
    CU_ASSERT_FATAL(w != NULL);
    uint64_t one = 1;
    CU_ASSERT_EQUAL(write(unused, &one, sizeof(one)), (ssize_t)sizeof(one));
    CU_ASSERT_EQUAL(qkv_wait(w, 0), 0); /* unwatched: never reported */
    CU_ASSERT_EQUAL(write(fd, &one, sizeof(one)), (ssize_t)sizeof(one));
    CU_ASSERT_EQUAL(qkv_wait(w, 1000), 1);
    CU_ASSERT_EQUAL(items[1].revents, ZMQ_POLLIN);
    CU_ASSERT_EQUAL(items[0].revents, 0);
    /* the socket has more than one turn reads, and the descriptor is
       still ready: both are reported */
    for (int i = 0; i < 2; i++)
        CU_ASSERT_EQUAL(zmq_send(b, "x", 1, 0), 1);
    CU_ASSERT_EQUAL(qkv_wait(w, 1000), 2);
    char buf[4];
    CU_ASSERT_EQUAL(zmq_recv(a, buf, sizeof(buf), ZMQ_DONTWAIT), 1);
    CU_ASSERT_EQUAL(qkv_wait(w, 1000), 2);
    CU_ASSERT(items[0].revents == ZMQ_POLLIN && items[1].revents == ZMQ_POLLIN);
    uint64_t count;
    CU_ASSERT_EQUAL(read(fd, &count, sizeof(count)), (ssize_t)sizeof(count));
    CU_ASSERT_EQUAL(s_drain(a), 1);
    qkv_wait_drained(w, 0);
    CU_ASSERT_EQUAL(qkv_wait(w, 0), 0);
    qkv_wait_destroy(&w);
    close(fd);
    close(unused);
    s_close(a, b);
}

static int s_setup(void) {
    s_ctx = zmq_ctx_new();
    return s_ctx ? 0 : -1;
}

static int s_teardown(void) {
    /* not zmq_ctx_term: a failed test may leave its sockets open */
    return zmq_ctx_shutdown(s_ctx);
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {
        KIT_TEST(test_message_wakes), KIT_TEST(test_left_unread),
        KIT_TEST(test_touched), KIT_TEST(test_descriptors_and_fairness),
        KIT_TESTS_END};
    return kit_add_suite("wait", s_setup, s_teardown, tests) ? 0 : -1;
}

int main(void) {
    return kit_run(s_add_suites);
}
