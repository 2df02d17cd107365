# Exports r-cran-mlbench's data sets that curvnet's suite reads (docs/datasets.md) to plain
# CSV, once: Rscript scripts/export-mlbench.R OUT_DIR. Factors are written as their labels,
# logical columns as 0/1, missing values as NA; a file already present is left alone.
args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) stop("usage: Rscript export-mlbench.R OUT_DIR")
out <- args[1]
dir.create(out, recursive = TRUE, showWarnings = FALSE)
sets <- c("Sonar", "Vehicle", "Vowel", "Satellite", "LetterRecognition", "Shuttle", "DNA", "Zoo",
          "BreastCancer", "Ozone", "Servo", "BostonHousing2")
for (name in sets) {
  path <- file.path(out, paste0(name, ".csv"))
  if (file.exists(path)) next
  data(list = name, package = "mlbench", envir = environment())
  d <- get(name)
  for (j in seq_along(d)) {
    if (is.logical(d[[j]])) d[[j]] <- as.integer(d[[j]])
    else if (is.factor(d[[j]])) d[[j]] <- as.character(d[[j]])
  }
  tmp <- paste0(path, ".tmp")
  write.csv(d, tmp, row.names = FALSE, na = "NA")
  file.rename(tmp, path)
  message("exported mlbench ", name, " to ", path)
}
