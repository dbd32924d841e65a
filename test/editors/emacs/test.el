;;; test.el --- Emacs + eglot (Debian's eglot 1.9) end-to-end check of the qdq language server  -*- lexical-binding: t -*-
;; emacs --batch -l test.el   (cwd = a temp folder holding model.py; env QDQ_SERVER = bin/qdq-language-server.js)
;; Eglot announces neither codeAction/resolve nor file creation, so this also covers the server's fallbacks:
;; edits computed when listing, and qdq_quant.py written by the qdq.writeHelperFile command of the action.
;; Each step prints "STEP <name> <detail>"; a failure prints "FAIL: ..." and exits 1.
(require 'package)
(package-initialize)
(require 'eglot)
(require 'python)

(defvar qdq-dir (file-name-as-directory default-directory))
(defun qdq-log (fmt &rest args) (princ (concat (apply #'format fmt args) "\n")))
(defun qdq-fail (msg) (qdq-log "FAIL: %s" msg) (kill-emacs 1))
(defun qdq-wait (pred secs)
  (let ((n 0))
    (while (and (not (funcall pred)) (< n (* 20 secs)))
      (accept-process-output nil 0.05)
      (setq n (1+ n))))
  (funcall pred))

(add-hook 'project-find-functions (lambda (_dir) (cons 'transient qdq-dir)))
(add-to-list 'eglot-server-programs `(python-mode . (,(or (getenv "QDQ_NODE") "node") ,(getenv "QDQ_SERVER") "--stdio")))
(setq eglot-send-changes-idle-time 0)

(defun qdq-lsp-diag (d) (cdr (assoc 'eglot-lsp-diag (eglot--diag-data d))))
(defun qdq-trt001 ()
  (cl-find-if (lambda (d) (equal (plist-get (qdq-lsp-diag d) :code) "TRT001")) (flymake-diagnostics)))

(defun qdq-apply (action server)
  (let ((edit (plist-get action :edit))
        (command (plist-get action :command)))
    (unless edit (qdq-fail (format "action without edit: %s" (plist-get action :title))))
    (eglot--apply-workspace-edit edit)
    (when command
      (eglot-execute-command server (intern (plist-get command :command)) (plist-get command :arguments)))
    (eglot--signal-textDocument/didChange)))

(defun qdq-goto (needle)
  (goto-char (point-min))
  (unless (search-forward needle nil t) (qdq-fail (format "%s not in buffer" needle)))
  (goto-char (match-beginning 0)))

(condition-case err
    (progn
      (find-file (expand-file-name "model.py" qdq-dir))
      (apply #'eglot (eglot--guess-contact))
      (unless (qdq-wait #'eglot-current-server 20) (qdq-fail "no server"))
      (flymake-start)
      (unless (qdq-wait #'qdq-trt001 20) (qdq-fail "no TRT001 diagnostic"))
      (let* ((server (eglot-current-server))
             (d (qdq-trt001)))
        (qdq-log "STEP diagnostic %s %s" (plist-get (qdq-lsp-diag d) :code) (flymake-diagnostic-text d))
        ;; the quick fix of the diagnostic
        (goto-char (flymake-diagnostic-beg d))
        (let ((fix (car (eglot-code-actions (line-beginning-position) (line-end-position) "quickfix"))))
          (unless fix (qdq-fail "no quick fix"))
          (qdq-log "STEP quickfix %s" (plist-get fix :title))
          (qdq-apply fix server))
        (unless (qdq-wait (lambda () (not (qdq-trt001))) 20) (qdq-fail "TRT001 still reported after its fix"))
        (qdq-log "STEP fixed")
        ;; quantize the conv layer
        (qdq-goto "nn.Conv2d(")
        (let ((quantize (cl-find-if (lambda (a) (string-prefix-p "Quantize this layer" (plist-get a :title)))
                                    (eglot-code-actions (line-beginning-position) (line-end-position)))))
          (unless quantize (qdq-fail "no \"Quantize this layer\" action"))
          (qdq-log "STEP action %s" (plist-get quantize :title))
          (qdq-apply quantize server))
        (save-buffer)
        (qdq-goto "nn.Conv2d(")
        (qdq-log "STEP line %s" (buffer-substring (line-beginning-position) (line-end-position)))
        (eglot-shutdown server)
        (qdq-log "STEP done")
        (kill-emacs 0)))
  (error (qdq-fail (format "error: %S" err))))
