;; Reads its stdin (the event) and echoes it to stdout, then returns (exit 0).
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start")
    (loop $more
      (i32.store (i32.const 8) (i32.const 1024))
      (i32.store (i32.const 12) (i32.const 65536))
      (drop (call $fd_read (i32.const 0) (i32.const 8) (i32.const 1) (i32.const 24)))
      (if (i32.load (i32.const 24))
        (then
          (i32.store (i32.const 12) (i32.load (i32.const 24)))
          (drop (call $fd_write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 24)))
          (br $more))))))
