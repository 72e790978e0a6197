;;; kokoro-tests.el --- Headless tests for kokoro.el against a real daemon  -*- lexical-binding: t -*-

;; Run: KOKORO_SOCKET=… emacs --batch -L client/editors/emacs -l kokoro-tests.el \
;;        -f ert-run-tests-batch-and-exit

;;; Code:

(require 'ert)
(require 'kokoro)

(setq kokoro-autostart nil)  ; the test runner starts the daemon it means

(ert-deftest kokoro-msgpack-round-trip ()
  (dolist (value (list 0 1 127 128 255 65535 70000 (expt 2 40) -1 -32 -33 -200 -70000
                       0.0 1.5 -2.25 3.14159 1e-5 "" "hello" "übergrößen ✓"
                       (make-string 40 ?a) (make-string 300 ?b) t nil
                       [1 2 "three"]))
    (let ((decoded (car (kokoro--unpack (kokoro--pack value) 0))))
      (should (equal decoded value))))
  ;; msgpack false is sent as :false and read back as nil, which Lisp takes as false
  (should (equal (kokoro--pack :false) (unibyte-string #xc2)))
  (should (null (car (kokoro--unpack (unibyte-string #xc2) 0))))
  (let ((map (car (kokoro--unpack (kokoro--pack '((op . "x") (n . 5) (inner . ((a . t)))))
                                  0))))
    (should (equal (alist-get 'op map) "x"))
    (should (equal (alist-get 'a (alist-get 'inner map)) t)))
  ;; float32 (#xca), as other msgpack writers may send: 1.5 and -0.15625
  (should (equal (car (kokoro--unpack (unibyte-string #xca #x3f #xc0 0 0) 0)) 1.5))
  (should (equal (car (kokoro--unpack (unibyte-string #xca #xbe #x20 0 0) 0)) -0.15625)))

(ert-deftest kokoro-text-format-follows-the-mode ()
  (with-temp-buffer
    (emacs-lisp-mode)
    (should (equal (kokoro-text-format) "code"))
    (text-mode)
    (should (equal (kokoro-text-format) "plain"))))

(ert-deftest kokoro-speaks-a-region-and-stops-it ()
  "The region is spoken by the daemon (`playing'), and `kokoro-stop' ends it."
  (with-temp-buffer
    (insert "This line is before the region.\n")
    (let ((beg (point)))
      (dotimes (i 15)
        (insert (format "Sentence %d of the region, read aloud by the daemon. " (1+ i))))
      (let ((id (kokoro-speak-region beg (point))))
        (should (kokoro-wait id 120 '("playing")))
        (should (>= (kokoro-stop) 1))
        (let ((end (kokoro-wait id 30)))
          (should end)
          (should (equal (alist-get 'op end) "end"))
          (should (equal (alist-get 'reason end) "stopped"))
          (should (> (alist-get 'audio_seconds end) 0))
          (should (< (alist-get 'audio_seconds end) 60)))))))

(ert-deftest kokoro-speaks-a-short-region-to-the-end ()
  (with-temp-buffer
    (insert "Hello from Emacs.")
    (let* ((id (kokoro-speak-buffer))
           (end (kokoro-wait id 120)))
      (should (equal (alist-get 'reason end) "done"))
      (should (< 0.5 (alist-get 'audio_seconds end) 5.0)))))

(ert-deftest kokoro-highlights-words-as-they-are-heard ()
  "The highlight moves over the region's words in order, and goes when speech ends."
  (with-temp-buffer
    (insert "Not spoken. ")
    (let ((beg (point)) seen (kokoro-interrupt t))
      (insert "Seven small birds sang on the old stone wall. Then they flew away.")
      (let ((id (kokoro-speak-region beg (point))))
        (while (not (member (kokoro-request-state id) '("end" "error")))
          (accept-process-output kokoro--process 0.02)
          (let ((ov (cdr (gethash id kokoro--highlights))))
            (when (and ov (overlay-start ov)
                       (not (equal (overlay-start ov) (car (car seen)))))
              (push (cons (overlay-start ov)
                          (buffer-substring-no-properties (overlay-start ov) (overlay-end ov)))
                    seen))))
        (setq seen (nreverse seen))
        (should (equal (kokoro-request-state id) "end"))
        ;; word after word, in the buffer's order, each a whole word of the region
        (should (>= (length seen) 6))
        (should (equal (cdr (car seen)) "Seven"))
        (let ((positions (mapcar #'car seen)))
          (should (equal positions (sort (copy-sequence positions) #'<))))
        (dolist (word seen)
          (should (>= (car word) beg))
          (should (string-match-p "\\`[[:alpha:]]+\\'" (cdr word))))
        (should-not (gethash id kokoro--highlights))
        (should-not (cl-some (lambda (ov) (eq (overlay-get ov 'face) 'kokoro-word))
                             (overlays-in (point-min) (point-max))))))))

(ert-deftest kokoro-stop-clears-the-highlight ()
  (with-temp-buffer
    (dotimes (i 12)
      (insert (format "Sentence %d is here to be stopped before it ends. " (1+ i))))
    (let ((id (kokoro-speak-buffer)))
      (while (and (not (cdr (gethash id kokoro--highlights)))
                  (not (member (kokoro-request-state id) '("end" "error"))))
        (accept-process-output kokoro--process 0.02))
      (should (overlay-buffer (cdr (gethash id kokoro--highlights))))
      (kokoro-stop)
      (should (equal (alist-get 'reason (kokoro-wait id 30)) "stopped"))
      (should-not (gethash id kokoro--highlights))
      (should-not (cl-some (lambda (ov) (eq (overlay-get ov 'face) 'kokoro-word))
                           (overlays-in (point-min) (point-max)))))))

(ert-deftest kokoro-pause-and-resume-reply ()
  (should (eq (alist-get 'paused (kokoro-pause)) t))
  (let ((resumed (kokoro-resume)))
    (should (assq 'paused resumed))
    (should-not (alist-get 'paused resumed))))

(ert-deftest kokoro-event-functions-see-false-as-nil ()
  "A frame's msgpack false reaches `kokoro-event-functions' as nil, not a truthy :false."
  (let* ((frames nil)
         (kokoro-event-functions (list (lambda (frame) (push frame frames)))))
    (with-temp-buffer
      (insert "Hello from Emacs.")
      (let* ((id (kokoro-speak-buffer))
             (end (kokoro-wait id 120))
             (seen (cl-find-if (lambda (f) (and (equal (alist-get 'id f) id)
                                                (equal (alist-get 'op f) "end")))
                               frames)))
        (should (equal (alist-get 'reason end) "done"))
        (should seen)
        (should (assq 'cancelled seen))
        (should-not (alist-get 'cancelled seen))))))

(ert-deftest kokoro-bad-voice-is-an-error-frame ()
  (let* ((kokoro-voice "no_such_voice")
         (end (kokoro-wait (kokoro-speak-string "Hi.") 30)))
    (should (equal (alist-get 'op end) "error"))
    (should (equal (alist-get 'code end) "unknown_voice"))))

(ert-deftest kokoro-reconnects-after-the-daemon-closed-the-connection ()
  "A daemon restart closes the connection; the next command reconnects (no SIGPIPE)."
  (kokoro--connection)
  ;; A frame header the daemon refuses as too large: it answers and closes the connection.
  (process-send-string kokoro--process (unibyte-string #x7f #xff #xff #xff))
  (let ((deadline (+ (float-time) 10)))
    (while (and (process-live-p kokoro--process) (< (float-time) deadline))
      (accept-process-output kokoro--process 0.05)))
  (with-temp-buffer
    (insert "Spoken after the connection was closed.")
    (let ((end (kokoro-wait (kokoro-speak-buffer) 120)))
      (should (equal (alist-get 'reason end) "done")))))

;;; kokoro-tests.el ends here
