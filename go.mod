module github.com/pulsehq/pulse

go 1.26
