package web

// SafeNext exposes safeNext to the black-box fuzz test.
var SafeNext = safeNext
