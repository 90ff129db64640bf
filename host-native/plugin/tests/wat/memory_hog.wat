;; Grows its memory 1 MiB at a time and touches every byte of it, without end. `memory.grow`
;; failing (-1) would end in `unreachable`; the host's limit stops it first.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (local $old i32)
    (loop $more
      (local.set $old (memory.grow (i32.const 16)))
      (if (i32.eq (local.get $old) (i32.const -1)) (then unreachable))
      ;; fill the new 1 MiB so that it is really in memory
      (memory.fill
        (i32.mul (local.get $old) (i32.const 65536))
        (i32.const 1)
        (i32.const 1048576))
      (br $more))))
