;; A reactor-like module: exports a function, but no `_start`.
(module
  (memory (export "memory") 1)
  (func (export "main")))
