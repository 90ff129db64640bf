;; Tries to leave its sandbox. First opens image.boot in its preopen (fd 3), which must work
;; (exit 4 otherwise), then tries `..` paths from the preopen, an absolute path, and paths on
;; descriptors that are not preopens (0, 1, 2, 4, 5). Any of those opening exits 0 with
;; "opened" on stderr; all refused exits 3 with "refused" on stderr.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "image.boot")             ;; 10
  (data (i32.const 120) "../../../../etc/passwd")  ;; 22
  (data (i32.const 150) "../image/image.boot")     ;; 19
  (data (i32.const 180) "/etc/passwd")             ;; 11
  (data (i32.const 200) "etc/passwd")              ;; 10
  (data (i32.const 300) "opened\n")                ;; 7
  (data (i32.const 320) "refused\n")               ;; 8
  (data (i32.const 340) "image.boot not readable\n") ;; 24
  ;; path_open(fd, path, len) for reading (rights fd_read, fd_seek, fd_tell) -> errno; the
  ;; opened fd goes to 16
  (func $open (param $fd i32) (param $path i32) (param $len i32) (result i32)
    (call $path_open (local.get $fd) (i32.const 0) (local.get $path) (local.get $len)
      (i32.const 0) (i64.const 0x26) (i64.const 0x26) (i32.const 0) (i32.const 16)))
  (func $say (param $ptr i32) (param $len i32)
    (i32.store (i32.const 8) (local.get $ptr))
    (i32.store (i32.const 12) (local.get $len))
    (drop (call $fd_write (i32.const 2) (i32.const 8) (i32.const 1) (i32.const 24))))
  (func $escaped
    (call $say (i32.const 300) (i32.const 7))
    (call $proc_exit (i32.const 0)))
  (func (export "_start")
    (local $fd i32)
    (if (call $open (i32.const 3) (i32.const 100) (i32.const 10))
      (then (call $say (i32.const 340) (i32.const 24)) (call $proc_exit (i32.const 4))))
    (if (i32.eqz (call $open (i32.const 3) (i32.const 120) (i32.const 22))) (then (call $escaped)))
    (if (i32.eqz (call $open (i32.const 3) (i32.const 150) (i32.const 19))) (then (call $escaped)))
    (if (i32.eqz (call $open (i32.const 3) (i32.const 180) (i32.const 11))) (then (call $escaped)))
    (local.set $fd (i32.const 0))
    (loop $fds
      (if (i32.ne (local.get $fd) (i32.const 3))
        (then
          (if (i32.eqz (call $open (local.get $fd) (i32.const 200) (i32.const 10))) (then (call $escaped)))
          (if (i32.eqz (call $open (local.get $fd) (i32.const 180) (i32.const 11))) (then (call $escaped)))))
      (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
      (br_if $fds (i32.lt_u (local.get $fd) (i32.const 6))))
    (call $say (i32.const 320) (i32.const 8))
    (call $proc_exit (i32.const 3))))
