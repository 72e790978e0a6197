;;; kokoro.el --- Speak text through the local kokorod daemon  -*- lexical-binding: t -*-

;; Version: 0.1.0
;; Package-Requires: ((emacs "27.1"))
;; Keywords: multimedia, convenience
;; URL: see README.md next to this file

;;; Commentary:

;; Speak the region, the buffer or a string with the Kokoro voice of the
;; local kokorod daemon, and stop it again.  Emacs talks to the daemon's Unix
;; socket directly (`make-network-process' with :family 'local) in its own
;; msgpack frames: no Python process is started per call.  The daemon plays
;; the audio itself (`play: true'), so Emacs needs no audio code.
;;
;;   M-x kokoro-speak-region   speak the region (interrupts this Emacs's speech)
;;   M-x kokoro-speak-buffer   speak the whole buffer
;;   M-x kokoro-stop           stop what this Emacs is saying
;;   M-x kokoro-pause / kokoro-resume
;;
;; Text in `prog-mode' buffers is read as code (identifiers split, symbols
;; spoken), in Markdown buffers as prose; see `kokoro-text-format'.

;;; Code:

(require 'cl-lib)
(require 'subr-x)

(defgroup kokoro nil
  "Speech through the local kokorod daemon."
  :group 'multimedia
  :prefix "kokoro-")

(defcustom kokoro-socket nil
  "Path of the kokorod socket.
nil means $KOKORO_SOCKET, else the path `kokorod socket' prints (asked once)."
  :type '(choice (const :tag "Automatic" nil) file))

(defcustom kokoro-program "kokorod"
  "The kokorod command, used to find the socket and to start the daemon."
  :type 'string)

(defcustom kokoro-autostart t
  "Start the daemon with `kokorod start' when it is not running."
  :type 'boolean)

(defcustom kokoro-client-name "emacs"
  "Name this Emacs gives the daemon; `kokoro-stop' stops only its speech."
  :type 'string)

(defcustom kokoro-voice nil
  "Voice name or blend (\"af_bella:0.6,af_sky:0.4\"); nil for the daemon's default."
  :type '(choice (const nil) string))

(defcustom kokoro-speed 1.0
  "Speech speed, 0.5 to 2.0."
  :type 'number)

(defcustom kokoro-priority "text"
  "Priority of speech from this Emacs: important, message, text or notification."
  :type '(choice (const "important") (const "message") (const "text")
                 (const "notification")))

(defcustom kokoro-interrupt t
  "Non-nil: new speech from this Emacs stops what it is saying.
nil: it waits in the daemon's queue."
  :type 'boolean)

(defcustom kokoro-highlight-words t
  "Non-nil: highlight each word of a spoken region or buffer as it is heard."
  :type 'boolean)

(defface kokoro-word '((t :inherit highlight))
  "The word being spoken (see `kokoro-highlight-words').")

(defvar kokoro--process nil "The connection to the daemon.")
(defvar kokoro--pending (unibyte-string) "Bytes received and not yet a whole frame.")
(defvar kokoro--next-id 0)
(defvar kokoro--requests (make-hash-table :test 'equal)
  "Request id → the last frame the daemon sent for it.")
(defvar kokoro--highlights (make-hash-table :test 'equal)
  "Request id → (START-MARKER . OVERLAY): where its text starts, its word highlight.")
(defvar kokoro-event-functions nil
  "Functions called with every frame from the daemon (an alist with symbol keys;
msgpack false and nil are both nil there).")

;;;; msgpack (the subset the protocol uses)

(defun kokoro--be (n bytes)
  "N as BYTES big-endian bytes (two's complement for negative N)."
  (apply #'unibyte-string
         (cl-loop for i from (1- bytes) downto 0
                  collect (logand (ash n (* -8 i)) 255))))

(defun kokoro--float-bits (x)
  "The IEEE 754 double bits of float X, as an integer."
  (if (= x 0.0)
      (if (< (copysign 1.0 x) 0) (ash 1 63) 0)
    (let* ((sign (if (< x 0) 1 0))
           (fe (frexp (abs x)))           ; x = s * 2^e, 0.5 <= s < 1
           (exp (+ (cdr fe) 1022))
           (mant (truncate (* (- (* 2 (car fe)) 1) (expt 2.0 52)))))
      (logior (ash sign 63) (ash exp 52) mant))))

(defun kokoro--pack-string (s)
  ;; encode-coding-string may hand back an ASCII string still marked multibyte;
  ;; concatenated with raw bytes that would turn every byte >127 into a char.
  (let* ((b (string-to-unibyte (encode-coding-string s 'utf-8)))
         (n (length b)))
    (concat (cond ((< n 32) (unibyte-string (logior #xa0 n)))
                  ((< n 256) (unibyte-string #xd9 n))
                  ((< n 65536) (concat (unibyte-string #xda) (kokoro--be n 2)))
                  (t (concat (unibyte-string #xdb) (kokoro--be n 4))))
            b)))

(defun kokoro--pack (obj)
  "OBJ as msgpack bytes.
An alist is a map (symbol keys become strings), a vector an array, t true,
:false false, nil nil."
  (cond
   ((eq obj t) (unibyte-string #xc3))
   ((eq obj :false) (unibyte-string #xc2))
   ((null obj) (unibyte-string #xc0))
   ((integerp obj)
    (cond ((<= 0 obj 127) (unibyte-string obj))
          ((<= -32 obj -1) (unibyte-string (logand obj 255)))
          ((<= 0 obj #xffffffff) (concat (unibyte-string #xce) (kokoro--be obj 4)))
          (t (concat (unibyte-string #xd3) (kokoro--be obj 8)))))
   ((floatp obj) (concat (unibyte-string #xcb) (kokoro--be (kokoro--float-bits obj) 8)))
   ((stringp obj) (kokoro--pack-string obj))
   ((symbolp obj) (kokoro--pack-string (symbol-name obj)))
   ((vectorp obj)
    (let ((n (length obj)))
      (concat (if (< n 16) (unibyte-string (logior #x90 n))
                (concat (unibyte-string #xdd) (kokoro--be n 4)))
              (apply #'concat (mapcar #'kokoro--pack obj)))))
   ((consp obj)
    (let ((n (length obj)))
      (concat (if (< n 16) (unibyte-string (logior #x80 n))
                (concat (unibyte-string #xdf) (kokoro--be n 4)))
              ;; concat of unibyte strings stays unibyte (mapconcat would not)
              (apply #'concat (mapcar (lambda (kv) (concat (kokoro--pack (car kv))
                                                           (kokoro--pack (cdr kv))))
                                      obj)))))
   (t (error "kokoro: cannot encode %S" obj))))

(defun kokoro--uint (s pos n)
  (let ((v 0))
    (dotimes (i n v) (setq v (logior (ash v 8) (aref s (+ pos i)))))))

(defun kokoro--int (s pos n)
  (let ((v (kokoro--uint s pos n)))
    (if (>= v (ash 1 (1- (* 8 n)))) (- v (ash 1 (* 8 n))) v)))

(defun kokoro--ieee (bits ebits mbits)
  "The float whose IEEE 754 encoding is BITS, with EBITS exponent and MBITS mantissa bits."
  (let* ((sign (if (zerop (ash bits (- (+ ebits mbits)))) 1.0 -1.0))
         (emax (1- (ash 1 ebits)))
         (bias (ash emax -1))
         (exp (logand (ash bits (- mbits)) emax))
         (mant (logand bits (1- (ash 1 mbits)))))
    (* sign (cond ((= exp 0) (ldexp (float mant) (- 1 bias mbits)))
                  ((= exp emax) (if (zerop mant) 1.0e+INF 0.0e+NaN))
                  (t (ldexp (+ 1.0 (/ (float mant) (expt 2.0 mbits))) (- exp bias)))))))

(defun kokoro--unpack (s pos)
  "Decode the msgpack value at POS in unibyte string S: (VALUE . NEXT-POS).
Maps become alists with symbol keys, arrays vectors, bin unibyte strings, true t,
false and nil nil (so `(if (alist-get \='cancelled frame) ...)' reads as it should)."
  (let ((b (aref s pos)))
    (cl-flet ((str (start n) (cons (decode-coding-string (substring s start (+ start n)) 'utf-8)
                                   (+ start n)))
              (bin (start n) (cons (substring s start (+ start n)) (+ start n)))
              (seq (start n) (let ((v (make-vector n nil)) (p start))
                               (dotimes (i n (cons v p))
                                 (let ((r (kokoro--unpack s p))) (aset v i (car r))
                                      (setq p (cdr r))))))
              (dict (start n) (let (out (p start))
                                (dotimes (_ n (cons (nreverse out) p))
                                  (let* ((k (kokoro--unpack s p))
                                         (v (kokoro--unpack s (cdr k))))
                                    (push (cons (if (stringp (car k)) (intern (car k)) (car k))
                                                (car v))
                                          out)
                                    (setq p (cdr v)))))))
      (cond
       ((<= b #x7f) (cons b (1+ pos)))
       ((<= #x80 b #x8f) (dict (1+ pos) (logand b 15)))
       ((<= #x90 b #x9f) (seq (1+ pos) (logand b 15)))
       ((<= #xa0 b #xbf) (str (1+ pos) (logand b 31)))
       ((>= b #xe0) (cons (- b 256) (1+ pos)))
       (t
        (pcase b
          (#xc0 (cons nil (1+ pos)))
          (#xc2 (cons nil (1+ pos)))
          (#xc3 (cons t (1+ pos)))
          (#xc4 (bin (+ pos 2) (kokoro--uint s (1+ pos) 1)))
          (#xc5 (bin (+ pos 3) (kokoro--uint s (1+ pos) 2)))
          (#xc6 (bin (+ pos 5) (kokoro--uint s (1+ pos) 4)))
          (#xca (cons (kokoro--ieee (kokoro--uint s (1+ pos) 4) 8 23) (+ pos 5)))
          (#xcb (cons (kokoro--ieee (kokoro--uint s (1+ pos) 8) 11 52) (+ pos 9)))
          (#xcc (cons (kokoro--uint s (1+ pos) 1) (+ pos 2)))
          (#xcd (cons (kokoro--uint s (1+ pos) 2) (+ pos 3)))
          (#xce (cons (kokoro--uint s (1+ pos) 4) (+ pos 5)))
          (#xcf (cons (kokoro--uint s (1+ pos) 8) (+ pos 9)))
          (#xd0 (cons (kokoro--int s (1+ pos) 1) (+ pos 2)))
          (#xd1 (cons (kokoro--int s (1+ pos) 2) (+ pos 3)))
          (#xd2 (cons (kokoro--int s (1+ pos) 4) (+ pos 5)))
          (#xd3 (cons (kokoro--int s (1+ pos) 8) (+ pos 9)))
          (#xd9 (str (+ pos 2) (kokoro--uint s (1+ pos) 1)))
          (#xda (str (+ pos 3) (kokoro--uint s (1+ pos) 2)))
          (#xdb (str (+ pos 5) (kokoro--uint s (1+ pos) 4)))
          (#xdc (seq (+ pos 3) (kokoro--uint s (1+ pos) 2)))
          (#xdd (seq (+ pos 5) (kokoro--uint s (1+ pos) 4)))
          (#xde (dict (+ pos 3) (kokoro--uint s (1+ pos) 2)))
          (#xdf (dict (+ pos 5) (kokoro--uint s (1+ pos) 4)))
          (_ (error "kokoro: unsupported msgpack byte #x%x" b))))))))

(defun kokoro--frame (message)
  "MESSAGE (an alist) as one frame: 4-byte big-endian length, msgpack map."
  (let ((body (kokoro--pack message)))
    (concat (kokoro--be (length body) 4) body)))

;;;; Connection

(defun kokoro--socket-path ()
  (or kokoro-socket
      (getenv "KOKORO_SOCKET")
      (setq kokoro-socket
            (string-trim (with-output-to-string
                           (with-current-buffer standard-output
                             (unless (eq 0 (call-process kokoro-program nil t nil "socket"))
                               (error "kokoro: `%s socket' failed: %s" kokoro-program
                                      (buffer-string)))))))))

(defun kokoro--filter (_proc bytes)
  (setq kokoro--pending (concat kokoro--pending bytes))
  (while (and (>= (length kokoro--pending) 4)
              (>= (length kokoro--pending) (+ 4 (kokoro--uint kokoro--pending 0 4))))
    (let* ((n (kokoro--uint kokoro--pending 0 4))
           (body (substring kokoro--pending 4 (+ 4 n))))
      (setq kokoro--pending (substring kokoro--pending (+ 4 n)))
      (kokoro--dispatch (car (kokoro--unpack body 0))))))

(defun kokoro--dispatch (frame)
  (let ((id (alist-get 'id frame))
        (op (alist-get 'op frame)))
    (if (equal op "mark")  ; not a state of the request: a word being heard
        (kokoro--highlight id frame)
      (when id (puthash id frame kokoro--requests)))
    (when (member op '("end" "error"))
      (kokoro--unhighlight id))
    (when (equal op "error")
      (message "kokoro: %s [%s]" (alist-get 'message frame) (alist-get 'code frame)))
    (run-hook-with-args 'kokoro-event-functions frame)))

(defun kokoro--highlight (id frame)
  "Move request ID's word highlight to the word of mark FRAME."
  (let ((entry (gethash id kokoro--highlights))
        (span (alist-get 'span frame)))
    (when (and entry span (equal (alist-get 'kind frame) "word")
               (buffer-live-p (marker-buffer (car entry))))
      (let* ((start (marker-position (car entry)))
             (overlay (or (cdr entry)
                          (setcdr entry (make-overlay start start (marker-buffer (car entry)))))))
        (overlay-put overlay 'face 'kokoro-word)
        (move-overlay overlay (+ start (aref span 0)) (+ start (aref span 1)))))))

(defun kokoro--unhighlight (id)
  "Request ID is over: its highlight goes."
  (let ((entry (gethash id kokoro--highlights)))
    (when entry
      (when (cdr entry) (delete-overlay (cdr entry)))
      (set-marker (car entry) nil)
      (remhash id kokoro--highlights))))

(defun kokoro--sentinel (proc _event)
  (unless (process-live-p proc)
    (setq kokoro--process nil kokoro--pending (unibyte-string))))

(defun kokoro--open (path)
  (make-network-process :name "kokoro" :family 'local :service path
                        :coding 'binary :filter #'kokoro--filter
                        :sentinel #'kokoro--sentinel :noquery t))

(defun kokoro--connection ()
  "The live connection, opened (and the daemon started) if needed.
A connection the daemon closed (it was restarted) is noticed first: writing to it
would kill a batch Emacs with SIGPIPE."
  (when (process-live-p kokoro--process)
    (accept-process-output kokoro--process 0 nil t))  ; an EOF runs the sentinel
  (unless (process-live-p kokoro--process)
    (let ((path (kokoro--socket-path)))
      (setq kokoro--pending (unibyte-string))
      (setq kokoro--process
            (condition-case err
                (kokoro--open path)
              (file-error
               (unless kokoro-autostart
                 (signal (car err) (cdr err)))
               (message "kokoro: starting the daemon…")
               (unless (eq 0 (call-process kokoro-program nil nil nil "start"))
                 (error "kokoro: `%s start' failed; see `kokorod status'" kokoro-program))
               (kokoro--open path))))
      (kokoro--send-now `((op . "hello") (id . ,(kokoro--id))
                          (client_name . ,kokoro-client-name)))))
  kokoro--process)

(defun kokoro--id ()
  (setq kokoro--next-id (1+ kokoro--next-id)))

(defun kokoro--send-now (message)
  (condition-case nil
      (process-send-string kokoro--process (kokoro--frame message))
    (error  ; closed under us after all: once more on a new connection
     (setq kokoro--process nil)
     (process-send-string (kokoro--connection) (kokoro--frame message)))))

(defun kokoro--request (op &rest fields)
  "Send OP with FIELDS (an alist); return the request id."
  (let ((id (kokoro--id)))
    (kokoro--connection)
    (remhash id kokoro--requests)
    (kokoro--send-now `((op . ,op) (id . ,id) ,@(car fields)))
    id))

(defun kokoro-request-state (id)
  "The last frame's op for request ID: start, playing, end, error, or nil."
  (alist-get 'op (gethash id kokoro--requests)))

(defun kokoro-wait (id &optional timeout ops)
  "Wait up to TIMEOUT seconds (default 60) until request ID sent one of OPS.
OPS defaults to the final frames (end, error).  Returns that frame, or nil."
  (let ((deadline (+ (float-time) (or timeout 60)))
        (ops (or ops '("end" "error"))))
    (while (and (not (member (kokoro-request-state id) ops))
                (< (float-time) deadline)
                (process-live-p kokoro--process))
      (accept-process-output kokoro--process 0.05))
    (let ((frame (gethash id kokoro--requests)))
      (and (member (alist-get 'op frame) ops) frame))))

;;;; Commands

(defun kokoro-text-format ()
  "How the daemon should read this buffer: code, markdown or plain."
  (cond ((derived-mode-p 'markdown-mode 'gfm-mode 'org-mode) "markdown")
        ((derived-mode-p 'prog-mode) "code")
        (t "plain")))

(defun kokoro-speak-string (text &optional text-format start)
  "Speak TEXT through the daemon; return the request id.
START, a buffer position where TEXT is (from `kokoro-speak-region'), has its words
highlighted as they are heard (see `kokoro-highlight-words')."
  (interactive "sSay: ")
  (when (string-empty-p (string-trim text))
    (user-error "kokoro: nothing to say"))
  (let* ((words (and start kokoro-highlight-words))
         (id (kokoro--request
              "synthesize"
              `((text . ,text) (play . t) (text_format . ,(or text-format "plain"))
                (speed . ,(float kokoro-speed)) (priority . ,kokoro-priority)
                (mode . ,(if kokoro-interrupt "interrupt" "queue"))
                ,@(when words '((marks . "word")))
                ,@(when kokoro-voice `((voice . ,kokoro-voice)))))))
    (when words
      (puthash id (cons (copy-marker start) nil) kokoro--highlights))
    id))

(defun kokoro-speak-region (beg end)
  "Speak the region from BEG to END; return the request id."
  (interactive "r")
  (kokoro-speak-string (buffer-substring-no-properties beg end) (kokoro-text-format) beg))

(defun kokoro-speak-buffer ()
  "Speak the whole buffer; return the request id."
  (interactive)
  (kokoro-speak-region (point-min) (point-max)))

(defun kokoro--control (op &rest fields)
  (let ((reply (kokoro-wait (kokoro--request op (car fields)) 10 (list op "error"))))
    (unless reply (error "kokoro: no reply to %s" op))
    reply))

(defun kokoro-stop (&optional everyone)
  "Stop what this Emacs is saying (with a prefix argument EVERYONE: all speech)."
  (interactive "P")
  (alist-get 'stopped (kokoro--control "stop" `((scope . ,(if everyone "all" "client"))))))

(defun kokoro-pause ()
  "Pause the daemon's speech output."
  (interactive)
  (kokoro--control "pause"))

(defun kokoro-resume ()
  "Resume the daemon's speech output."
  (interactive)
  (kokoro--control "resume"))

(provide 'kokoro)
;;; kokoro.el ends here
