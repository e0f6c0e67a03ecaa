/* Unit tests for log: every line that reaches stderr is one line, with
 * control bytes and backslashes escaped, whatever a caller formats into
 * it (store names come from whoever can write the store). */
#include "config.h"

#include "check.h"
#include "util/log.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char capfile[TEST_TMP_MAX];
static int saved_stderr = -1;

static void capture_start(void)
{
    int fd = test_tmp_template(capfile, sizeof(capfile), "vmstorefs-log") ? mkstemp(capfile) : -1;
    CHECK(fd >= 0);
    fflush(stderr);
    saved_stderr = dup(2);
    if (fd >= 0) {
        dup2(fd, 2);
        close(fd);
    }
}

/* Restores stderr and returns what was written meanwhile. */
static const char *capture_end(void)
{
    static char buf[4 * MSG_MAX];
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    buf[0] = '\0';
    FILE *f = fopen(capfile, "re");
    if (f) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    unlink(capfile);
    return buf;
}

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

static void test_forged_line(void)
{
    capture_start();
    log_msg(LOG_WARNING, "skipping %s: not a valid name",
            "/srv/store/evil\nvmstorefs: serving /etc\x1b[2J");
    const char *out = capture_end();
    CHECK_STR(out, "vmstorefs: skipping /srv/store/evil\\nvmstorefs: serving /etc\\x1b[2J: "
                   "not a valid name\n");
    CHECK_INT(count_char(out, '\n'), 1);
    CHECK(strchr(out, '\x1b') == NULL);
}

static void test_every_entry_point(void)
{
    log_once_reset();
    capture_start();
    log_once(LOG_WARNING, "/s/a\rb", "name", "skipping %s", "/s/a\rb");
    log_refusal("unlink", "/m/x\ty", "read-only\x7f");
    log_msg(LOG_INFO, "%s", "back\\slash and \x01");
    const char *out = capture_end();
    CHECK_STR(out, "vmstorefs: skipping /s/a\\rb\n"
                   "vmstorefs: refused unlink /m/x\\ty: read-only\\x7f\n"
                   "vmstorefs: back\\\\slash and \\x01\n");
    log_once_reset();
}

static void test_escape(void)
{
    char out[64];
    CHECK_INT(log_escape("plain text", out, sizeof(out)), 10);
    CHECK_STR(out, "plain text");
    /* UTF-8 names are not control bytes: they pass as they are. */
    log_escape("caf\xc3\xa9", out, sizeof(out));
    CHECK_STR(out, "caf\xc3\xa9");
    log_escape("a\x1f\x7f\\", out, sizeof(out));
    CHECK_STR(out, "a\\x1f\\x7f\\\\");
    /* Truncation keeps escapes whole: "ab\x1b" into 6 bytes is "ab". */
    CHECK_INT(log_escape("ab\x1b", out, 6), 2);
    CHECK_STR(out, "ab");
    CHECK_INT(log_escape("ab\x1b", out, 7), 6);
    CHECK_STR(out, "ab\\x1b");
}

int main(void)
{
    log_init("vmstorefs", true);
    test_forged_line();
    test_every_entry_point();
    test_escape();
    CHECK_DONE();
}
