;; fib.clj: Fibonacci numbers three ways.
;; Run with: jitcache run examples/lisp/fib.clj

;; Naive recursion: exponential, but a good workout for calls.
(defn fib [n]
  (if (< n 2)
    n
    (+ (fib (- n 1)) (fib (- n 2)))))

;; A loop with recur: constant stack.
(defn fib-iter [n]
  (loop [a 0 b 1 k n]
    (if (= k 0)
      a
      (recur b (+ a b) (- k 1)))))

;; Tail recursion to the function itself (recur without loop).
(defn fib-acc [n a b]
  (if (= n 0) a (recur (- n 1) b (+ a b))))

(defn main []
  (println (fib 25) (fib-iter 25) (fib-acc 25 0 1))
  ;; the largest Fibonacci number that fits in an i64
  (println (fib-iter 92))
  (loop [i 0]
    (if (<= i 10)
      (do (println i (fib i))
          (recur (+ i 1)))
      0)))
