# watch_outside DIR LOG [SOCK]: a watcher (sourced after lib.sh, not run)
# that writes to LOG every open or read of a file in DIR (inotify) and,
# with SOCK, every connection to a unix socket it listens on there. What
# the tests use to see that nothing outside the store was touched: the
# daemon runs as root, so a refused name is proved unused only by the
# files it names staying unread. Returns once the watcher is watching;
# it dies with the test (DAEMONS).
watch_outside() {
    local dir=$1 log=$2 sock=${3:-} ready=$TMP/watching.$$.$RANDOM i
    : >"$log"
    python3 - "$dir" "$log" "$ready" "$sock" <<'PY' &
import ctypes, os, select, socket, sys, struct
outside, out, ready, sock_path = sys.argv[1:5]
libc = ctypes.CDLL(None, use_errno=True)
IN_ACCESS, IN_OPEN = 0x1, 0x20
fd = libc.inotify_init1(os.O_NONBLOCK)
libc.inotify_add_watch(fd, outside.encode(), IN_ACCESS | IN_OPEN)
watched = [fd]
if sock_path:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(8)
    watched.append(srv)
open(ready, "w").close()
while True:
    r, _, _ = select.select(watched, [], [])
    with open(out, "a") as log:
        if fd in r:
            data = os.read(fd, 4096)
            while data:
                wd, mask, cookie, n = struct.unpack("iIII", data[:16])
                name = data[16:16 + n].rstrip(b"\0").decode()
                log.write("inotify %s %#x\n" % (name, mask))
                data = data[16 + n:]
        if len(watched) > 1 and watched[1] in r:
            c, _ = watched[1].accept()
            log.write("nbd connection\n")
            c.close()
PY
    DAEMONS+=("$!")
    for i in $(seq 50); do [ -e "$ready" ] && return 0; sleep 0.1; done
    fail "the watcher of $dir did not start"
}
