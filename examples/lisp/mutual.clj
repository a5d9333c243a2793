;; mutual.clj: mutual recursion, forward references, and an exit status.
;; Run with: jitcache run examples/lisp/mutual.clj; echo $?

(defn main []
  ;; even? and odd? are defined further down the file
  (println (even? 10) (odd? 10) (even? 7) (odd? 7))
  (println (count-evens 100))
  ;; Hofstadter's female and male sequences
  (println (f 0) (f 1) (f 2) (f 3) (f 4) (f 5) (f 6) (f 7) (f 8) (f 9))
  (println (m 0) (m 1) (m 2) (m 3) (m 4) (m 5) (m 6) (m 7) (m 8) (m 9))
  ;; main's value is the process's exit status: 0 when the check holds
  (if (= (count-evens 100) 51) 0 1))

(defn even? [n] (if (= n 0) 1 (odd? (- n 1))))
(defn odd? [n] (if (= n 0) 0 (even? (- n 1))))

(defn count-evens [n]
  (loop [i 0 c 0]
    (if (> i n) c (recur (+ i 1) (+ c (even? i))))))

(defn f [n] (if (= n 0) 1 (- n (m (f (- n 1))))))
(defn m [n] (if (= n 0) 0 (- n (f (m (- n 1))))))
