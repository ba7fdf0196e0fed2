module github.com/timelapse-ml/pipeline

go 1.26.0
