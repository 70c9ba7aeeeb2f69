/* PLACEHOLDER: being written (issue 7). */
typedef int qblk_placeholder_unused;
