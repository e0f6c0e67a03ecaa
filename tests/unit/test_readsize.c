/* Unit tests for readsize: the read cap that keeps every reply on the
 * splice path, for the default and unusual pipe-max-size settings. */
#include "config.h"

#include "check.h"
#include "testutil.h"
#include "datapath/readsize.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

enum { PAGE = 4096 };

/* What libfuse checks before it splices (see readsize.c). */
static int fits(size_t data, size_t pipe_max)
{
    return 3 * PAGE + 16 + data <= pipe_max;
}

int main(void)
{
    /* Default 1 MiB pipes: a full 1 MiB reply does not fit, 1008 KiB does. */
    size_t r = readsize_for_pipe(1 << 20, PAGE);
    CHECK_INT(r, 1008 * 1024);
    CHECK(fits(r, 1 << 20));
    CHECK(!fits(r + PAGE, 1 << 20));
    CHECK_INT(r % PAGE, 0);

    /* Bigger pipes: the kernel's own 1 MiB limit is the cap. */
    CHECK_INT(readsize_for_pipe(4 << 20, PAGE), READSIZE_KERNEL_MAX);
    CHECK_INT(readsize_for_pipe((1 << 20) + 4 * PAGE, PAGE), READSIZE_KERNEL_MAX);

    /* Small pipes: what fits, and never below one page. */
    CHECK_INT(readsize_for_pipe(64 * 1024, PAGE), 12 * PAGE);
    CHECK_INT(readsize_for_pipe(PAGE, PAGE), PAGE);
    CHECK_INT(readsize_for_pipe(0, PAGE), PAGE);

    /* This process: a full 1 MiB reply when a pipe can hold one (root
     * with CAP_SYS_RESOURCE), else the fit for pipe-max-size. */
    int p[2];
    CHECK(pipe(p) == 0);
    bool big = fcntl(p[0], F_SETPIPE_SZ, (1 << 20) + 3 * PAGE + 16) >= (1 << 20) + 3 * PAGE + 16;
    close(p[0]);
    close(p[1]);
    printf("a pipe can%s hold a 1 MiB reply here\n", big ? "" : "not");
    if (big) {
        CHECK_INT(readsize_for_system("/nonexistent/pipe-max-size", PAGE), READSIZE_KERNEL_MAX);
        CHECK_DONE();
    }

    /* From a file like /proc/sys/fs/pipe-max-size; unreadable means 1 MiB. */
    char path[TEST_TMP_MAX];
    int fd = test_tmp_template(path, sizeof(path), "vmstorefs-readsize") ? mkstemp(path) : -1;
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(write(fd, "262144\n", 7) == 7);
        close(fd);
        CHECK_INT(readsize_for_system(path, PAGE), 60 * PAGE); /* 256 KiB - 3 pages - 16 */
        unlink(path);
    }
    CHECK_INT(readsize_for_system("/nonexistent/pipe-max-size", PAGE), 1008 * 1024);
    CHECK_DONE();
}
