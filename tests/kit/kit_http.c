/*  kit_http.c - the test kit's HTTP client: libcurl with one easy handle
    per thread, so each thread keeps its connections alive between
    requests. Redirects are never followed (tests check 307s themselves).
*/
#include "kit.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static pthread_key_t s_key;
static _Thread_local long s_timeout_ms = 30000;
static _Thread_local bool s_quiet = false;
static _Thread_local bool s_not_sent = false;   /* the last failure */
static _Thread_local bool s_fresh = false;      /* a connection per request */
static _Thread_local bool s_token_set = false;  /* else QKV_TEST_TOKEN */
static _Thread_local char s_token[512];         /* "" for none */
static _Thread_local bool s_cafile_set = false; /* else QKV_TEST_CAFILE */
static _Thread_local char s_cafile[1024];       /* "" for curl's default */

static void s_handle_free(void *handle) {
    if (handle)
        curl_easy_cleanup((CURL *)handle);
}

static void s_at_exit(void) {
    kit_http_thread_done();
    curl_global_cleanup();
}

static void s_init(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_key_create(&s_key, s_handle_free);
    atexit(s_at_exit);
}

static CURL *s_handle(void) {
    pthread_once(&s_once, s_init);
    CURL *handle = pthread_getspecific(s_key);
    if (!handle) {
        handle = curl_easy_init();
        pthread_setspecific(s_key, handle);
    }
    return handle;
}

void kit_http_thread_done(void) {
    pthread_once(&s_once, s_init);
    CURL *handle = pthread_getspecific(s_key);
    pthread_setspecific(s_key, NULL);
    s_handle_free(handle);
}

void kit_http_set_fresh(bool fresh) {
    s_fresh = fresh;
}

bool kit_http_not_sent(void) {
    return s_not_sent;
}

void kit_http_set_quiet(bool quiet) {
    s_quiet = quiet;
}

void kit_http_set_timeout_ms(long timeout_ms) {
    s_timeout_ms = timeout_ms;
}

void kit_http_set_token(const char *token) {
    snprintf(s_token, sizeof s_token, "%s", token ? token : "");
    s_token_set = true;
}

void kit_http_set_cafile(const char *path) {
    snprintf(s_cafile, sizeof s_cafile, "%s", path ? path : "");
    s_cafile_set = true;
}

/* This thread's setting, else the environment's; NULL when neither. */
static const char *s_setting(bool set, const char *value, const char *env) {
    if (!set)
        value = getenv(env);
    return value && *value ? value : NULL;
}

/*  ---------------------------------------------------------------------
    Collecting the answer */

typedef struct {
    char *data;
    size_t size;
    size_t cap;
    bool failed;
} s_buf_t;

static size_t s_on_body(char *ptr, size_t size, size_t nmemb, void *arg) {
    s_buf_t *buf = arg;
    size_t n = size * nmemb;
    if (buf->size + n + 1 > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 4096;
        while (cap < buf->size + n + 1)
            cap *= 2;
        char *data = realloc(buf->data, cap);
        if (!data) {
            buf->failed = true;
            return 0;
        }
        buf->data = data;
        buf->cap = cap;
    }
    memcpy(buf->data + buf->size, ptr, n);
    buf->size += n;
    buf->data[buf->size] = '\0';
    return n;
}

/* Copies a header's value (after "Name:"), trimmed, replacing *slot. */
static void s_take_header(char **slot, const char *value, size_t len) {
    while (len && (*value == ' ' || *value == '\t')) {
        value++;
        len--;
    }
    while (len && (value[len - 1] == '\r' || value[len - 1] == '\n' ||
                   value[len - 1] == ' '))
        len--;
    free(*slot);
    *slot = strndup(value, len);
}

static size_t s_on_header(char *ptr, size_t size, size_t nmemb, void *arg) {
    kit_resp_t *resp = arg;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        /* A new status line (after a 1xx): forget earlier headers. */
        free(resp->location);
        free(resp->content_type);
        free(resp->www_authenticate);
        resp->location = resp->content_type = resp->www_authenticate = NULL;
    } else if (n > 9 && strncasecmp(ptr, "Location:", 9) == 0) {
        s_take_header(&resp->location, ptr + 9, n - 9);
    } else if (n > 13 && strncasecmp(ptr, "Content-Type:", 13) == 0) {
        s_take_header(&resp->content_type, ptr + 13, n - 13);
    } else if (n > 17 && strncasecmp(ptr, "WWW-Authenticate:", 17) == 0) {
        s_take_header(&resp->www_authenticate, ptr + 17, n - 17);
    }
    return n;
}

/*  ---------------------------------------------------------------------
    Requests */

static void s_set_method(CURL *h, const char *method, const char *body,
                         size_t body_len) {
    if (strcmp(method, "GET") == 0 && !body) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        return;
    }
    if (strcmp(method, "POST") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)(body ? body_len : 0));
}

int kit_http(const char *method, const char *url, const char *body,
             size_t body_len, kit_resp_t *resp) {
    memset(resp, 0, sizeof *resp);
    CURL *h = s_handle();
    if (!h)
        return -1;
    s_buf_t buf = {0};
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "Expect:");
    if (body)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    const char *token = s_setting(s_token_set, s_token, "QKV_TEST_TOKEN");
    const char *cafile = s_setting(s_cafile_set, s_cafile, "QKV_TEST_CAFILE");
    if (token) {
        char line[600];
        snprintf(line, sizeof line, "Authorization: Bearer %s", token);
        headers = curl_slist_append(headers, line);
    }
    curl_easy_reset(h);
    if (cafile)
        curl_easy_setopt(h, CURLOPT_CAINFO, cafile);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_MAXCONNECTS, 16L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s_timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, s_fresh ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, s_fresh ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &buf);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    s_set_method(h, method, body, body_len);
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(headers);
    s_not_sent =
        rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST;
    if (rc == CURLE_OK && !buf.failed) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
        curl_off_t length = -1;
        curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
        resp->content_length = (long long)length;
        resp->body = buf.data ? buf.data : strdup("");
        resp->body_len = buf.size;
        return 0;
    }
    if (!s_quiet)
        fprintf(stderr, "kit: %s %s: %s\n", method, url,
                buf.failed ? "out of memory" : curl_easy_strerror(rc));
    free(buf.data);
    kit_resp_free(resp);
    return -1;
}

void kit_resp_free(kit_resp_t *resp) {
    free(resp->body);
    free(resp->location);
    free(resp->content_type);
    free(resp->www_authenticate);
    memset(resp, 0, sizeof *resp);
}

int kit_http_get(const char *url, long *status, char **body) {
    kit_resp_t resp;
    *status = 0;
    if (body)
        *body = NULL;
    if (kit_http("GET", url, NULL, 0, &resp) != 0)
        return -1;
    *status = resp.status;
    if (body) {
        *body = resp.body;
        resp.body = NULL;
    }
    kit_resp_free(&resp);
    return 0;
}

int kit_http_post_json(const char *url, const char *json, long *status,
                       char **body, char **location) {
    kit_resp_t resp;
    *status = 0;
    if (body)
        *body = NULL;
    if (location)
        *location = NULL;
    if (kit_http("POST", url, json, strlen(json), &resp) != 0)
        return -1;
    *status = resp.status;
    if (body) {
        *body = resp.body;
        resp.body = NULL;
    }
    if (location) {
        *location = resp.location;
        resp.location = NULL;
    }
    kit_resp_free(&resp);
    return 0;
}

char *kit_url_escape(const char *s, size_t len) {
    char *escaped = curl_easy_escape(s_handle(), s, (int)len);
    char *copy = escaped ? strdup(escaped) : NULL;
    curl_free(escaped);
    return copy;
}
