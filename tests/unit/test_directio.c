/* Unit tests for directio: writes to an O_DIRECT descriptor from
 * unaligned memory, at unaligned offsets and sizes, all land, and land
 * in the file that is open even after its path names another. */
#include "config.h"

#include "check.h"
#include "datapath/directio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/var/tmp/test_directio.XXXXXX";

static void expect(int fd, off_t off, size_t len, char c)
{
    char *buf = malloc(len);
    CHECK(pread(fd, buf, len, off) == (ssize_t)len);
    size_t bad = 0;
    for (size_t i = 0; i < len; i++)
        bad += buf[i] != c;
    CHECK_INT(bad, 0);
    free(buf);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[128], moved[128];
    snprintf(path, sizeof(path), "%s/img", dir);
    snprintf(moved, sizeof(moved), "%s/img.old", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_DIRECT, 0600);
    if (fd < 0) {
        printf("SKIP: O_DIRECT not supported in /var/tmp\n");
        rmdir(dir);
        return 77;
    }
    int plain = open(path, O_RDONLY);
    char *mem = malloc(3 * 65536);
    /* Memory off alignment by 80 bytes, as libfuse's buffers are. */
    char *data = mem + 80;
    memset(data, 'a', 65536);
    errno = 0;
    CHECK(pwrite(fd, data, 65536, 0) < 0 && errno == EINVAL); /* the problem */
    CHECK_INT(directio_pwrite(fd, data, 65536, 0), 65536);
    expect(plain, 0, 65536, 'a');
    /* Offset and size no device block fits. */
    memset(data, 'b', 1000);
    CHECK_INT(directio_pwrite(fd, data, 1000, 4097), 1000);
    expect(plain, 4097, 1000, 'b');
    expect(plain, 4096, 1, 'a');
    expect(plain, 5097, 1, 'a');
    /* Another file at the path now: writes still reach the open one. */
    CHECK(rename(path, moved) == 0);
    int other = open(path, O_RDWR | O_CREAT, 0600);
    memset(data, 'c', 100);
    CHECK_INT(directio_pwrite(fd, data, 100, 10), 100);
    expect(plain, 10, 100, 'c');
    struct stat st;
    CHECK(fstat(other, &st) == 0 && st.st_size == 0);
    /* Errors other than alignment come back as they are. */
    CHECK_INT(directio_pwrite(-1, data, 100, 0), -EBADF);
    free(mem);
    close(other);
    close(plain);
    close(fd);
    unlink(path);
    unlink(moved);
    rmdir(dir);
    CHECK_DONE();
}
