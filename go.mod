module github.com/embedd-dev/embedd

go 1.24
