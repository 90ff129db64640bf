;; Imports a function the sandbox does not give.
(module
  (import "env" "open_socket" (func (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")))
